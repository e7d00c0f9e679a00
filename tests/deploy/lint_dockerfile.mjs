// Lints docker/Dockerfile with dockerfile-utils (the Dockerfile language service's validator:
// instruction syntax, flags, durations, ports), then checks the image's promises: multi-stage on
// Debian bookworm, the README install script in the build stage, only runtime libraries in the
// final stage, a non-root user, EXPOSE, a HEALTHCHECK on /health, STOPSIGNAL SIGTERM, and no
// model weights copied in. hadolint is not packaged for Debian bookworm; this is what we check.
// A broken Dockerfile must produce diagnostics, so the linter is known to bite.
// usage: node lint_dockerfile.mjs DOCKERFILE
import { readFileSync } from "node:fs";
import { validate } from "dockerfile-utils";

let passed = 0, failed = 0;
function check(what, cond) {
  if (cond) passed++;
  else { failed++; console.log(`FAIL ${what}`); }
}
const text = readFileSync(process.argv[2], "utf8");
const diags = validate(text);
for (const d of diags) console.log(`  line ${d.range.start.line + 1}: ${d.message}`);
check("dockerfile-utils finds no problem", diags.length === 0);

const lines = text.split("\n").filter((l) => !l.trim().startsWith("#"));
const stages = lines.filter((l) => /^FROM\s/i.test(l));
check("multi-stage build", stages.length >= 2);
check("Debian bookworm bases", stages.every((l) => /debian:bookworm/.test(l)));
const finalStage = text.slice(text.lastIndexOf("\nFROM "));
check("build stage uses the README install script", /scripts\/install\.sh --build-only/.test(text));
check("final stage has no compiler", !/build-essential|cmake|-dev\b/.test(finalStage));
check("non-root user", /^USER\s+(?!root|0\b)\S+/m.test(finalStage));
check("EXPOSE", /^EXPOSE\s+\d+/m.test(finalStage));
check("HEALTHCHECK on /health", /^HEALTHCHECK[\s\S]*?\/health/m.test(finalStage));
check("STOPSIGNAL SIGTERM", /^STOPSIGNAL\s+SIGTERM/m.test(finalStage));
check("configured through environment", /^ENV\s+MOESERVE_MODEL=/m.test(finalStage));
check("no weights in the image", !/\.safetensors|COPY\s+models/i.test(text));

check("linter rejects a broken Dockerfile",
  validate("FROM debian\nHEALTHCHECK --interval=abc CMD true\nUSER\n").length >= 2);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
