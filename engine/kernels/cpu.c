#include "engine/kernels/cpu.h"

#include <cpuid.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* AMX-INT8: the CPU has it (CPUID.7.0:EDX bits 24, 25), the kernel saves the tile state
 * (XCR0 bits 17, 18) and grants this process the tile data (Linux 5.16+: ARCH_REQ_XCOMP_PERM
 * for XFEATURE_XTILEDATA; the permission covers every thread of the process). */
static bool amx_usable(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 25))) return false;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false; /* OSXSAVE */
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & (3u << 17)) != (3u << 17)) return false;
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

/* The CPU's best ISA, found once (the AMX check makes a system call); read-only afterwards. */
static enum kern_isa detected_isa;
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

static void detect_isa(void)
{
    __builtin_cpu_init();
    detected_isa = KERN_ISA_PORTABLE;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        detected_isa = KERN_ISA_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512vnni"))
        detected_isa = amx_usable() ? KERN_ISA_AMX : KERN_ISA_AVX512;
}

static enum kern_isa cpu_isa(void)
{
    pthread_once(&detect_once, detect_isa);
    return detected_isa;
}

enum kern_isa kern_isa_best(void)
{
    enum kern_isa isa = cpu_isa();
    const char *cap = getenv("MOESERVE_KERNEL_ISA"); /* a test seam: run the slower paths */
    if (cap && !strcmp(cap, "portable")) return KERN_ISA_PORTABLE;
    if (cap && !strcmp(cap, "avx2") && isa > KERN_ISA_AVX2) return KERN_ISA_AVX2;
    if (cap && !strcmp(cap, "avx512") && isa > KERN_ISA_AVX512) return KERN_ISA_AVX512;
    return isa;
}

const char *kern_isa_name(enum kern_isa isa)
{
    switch (isa) {
    case KERN_ISA_PORTABLE: return "portable";
    case KERN_ISA_AVX2: return "avx2";
    case KERN_ISA_AVX512: return "avx512";
    case KERN_ISA_AMX: return "amx";
    }
    return "?";
}

bool kern_has_dpbf16(void)
{
    __builtin_cpu_init();
    return cpu_isa() >= KERN_ISA_AVX512 && __builtin_cpu_supports("avx512bf16");
}
