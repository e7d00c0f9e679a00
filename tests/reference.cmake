# Reference tests: the C engine's `moeserve forward` logits against the independent numpy
# reference (tests/reference/qwen3_ref.py), on random-weight models made by tools/make_model.py.
# Models go to ${MS_MODELS}/ref-*, made by fixture tests (ref_model_*), and are
# only regenerated when make_model.py or the arguments change (tests/reference/ensure_model.py).
# The tolerance and its justification are in tests/reference/compare_logits.py.

set(MS_REF_DIR ${CMAKE_CURRENT_SOURCE_DIR}/reference)
set(MS_REF_MODELS ${MS_MODELS})

# ms_ref_model(NAME make_model args...): fixture test that makes ${MS_REF_MODELS}/ref-NAME
function(ms_ref_model name)
  add_test(NAME ref_model_${name}
           COMMAND ${MS_PYTHON} ${MS_REF_DIR}/ensure_model.py ${MS_REF_MODELS}/ref-${name} ${ARGN})
  set_tests_properties(ref_model_${name} PROPERTIES FIXTURES_SETUP ref_model_${name} TIMEOUT 300
                       LABELS reference)
endfunction()

# ms_ref_compare(TEST MODEL prompt args...): engine vs reference on one prompt
function(ms_ref_compare name model)
  add_test(NAME ref_${name}
           COMMAND ${MS_PYTHON} ${MS_REF_DIR}/compare_logits.py $<TARGET_FILE:moeserve>
                   --model ${MS_REF_MODELS}/ref-${model} ${ARGN})
  set_tests_properties(ref_${name} PROPERTIES FIXTURES_REQUIRED ref_model_${model} TIMEOUT 300
                       LABELS reference)
endfunction()

ms_ref_model(tiny)
ms_ref_model(tiny-shards3 --shards 3)
ms_ref_model(tiny-f16 --dtype f16)
ms_ref_model(tiny-f32 --dtype f32)
ms_ref_model(tiny-dense --dense)
ms_ref_model(tiny-tied --tie-embeddings)
ms_ref_model(tiny-yarn --yarn)
# 6 layers, sparse step 2 -> layers 1,3,5 would be sparse; layer 3 is forced dense
ms_ref_model(tiny-sparse-step --layers 6 --decoder-sparse-step 2 --mlp-only-layers 3)
ms_ref_model(tiny-no-norm-topk --no-norm-topk)
ms_ref_model(a3b-1 --preset a3b --layers 1)

# Prompts. Real ones are Qwen3 tokenizer ids of:
#   CHAT: "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
#   CODE: "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + ..."
#   FOX8: the first 8 tokens of "The quick brown fox jumps over the lazy dog."
set(P_CHAT 151644,872,198,3838,374,279,6722,315,9625,30,151645,198,151644,77091,198)
set(P_CODE 750,75698,1445,982,262,421,308,366,220,17,510,286,470,308,198,262,470,75698,1445,481,220,16,8,488,75698,1445,481,220,17,340)
set(P_FOX8 785,3974,13876,38835,34208,916,279,15678)

ms_ref_compare(tiny_one_token     tiny --prompt-ids 151643)
ms_ref_compare(tiny_chat          tiny --prompt-ids ${P_CHAT})
ms_ref_compare(tiny_code          tiny --prompt-ids ${P_CODE})
ms_ref_compare(tiny_repeat        tiny --prompt-ids 13,13,13,13,13,13,13,13,13,13,13,13)
ms_ref_compare(tiny_random320     tiny --random 320 --seed 1)
ms_ref_compare(tiny_shards3       tiny-shards3 --random 40 --seed 12)
ms_ref_compare(tiny_f16           tiny-f16 --prompt-ids ${P_CHAT})
ms_ref_compare(tiny_f32           tiny-f32 --prompt-ids ${P_CHAT})
ms_ref_compare(tiny_dense         tiny-dense --random 64 --seed 3)
ms_ref_compare(tiny_tied          tiny-tied --prompt-ids ${P_CODE})
ms_ref_compare(tiny_yarn          tiny-yarn --random 100 --seed 4)
ms_ref_compare(tiny_sparse_step   tiny-sparse-step --random 64 --seed 5)
ms_ref_compare(tiny_no_norm_topk  tiny-no-norm-topk --random 64 --seed 6)
ms_ref_compare(a3b_1layer         a3b-1 --prompt-ids ${P_FOX8})

# End to end: `moeserve generate` greedy ids (prefill + KV-cached decode) against the
# reference's full-recompute greedy decode.
function(ms_ref_greedy name model)
  add_test(NAME ref_greedy_${name}
           COMMAND ${MS_PYTHON} ${MS_REF_DIR}/compare_greedy.py $<TARGET_FILE:moeserve>
                   --model ${MS_REF_MODELS}/ref-${model} ${ARGN})
  set_tests_properties(ref_greedy_${name} PROPERTIES FIXTURES_REQUIRED ref_model_${model}
                       TIMEOUT 300 LABELS reference)
endfunction()
ms_ref_greedy(tiny_chat          tiny --prompt-ids ${P_CHAT} --max-tokens 32)
ms_ref_greedy(tiny_one_token     tiny --prompt-ids 151643 --max-tokens 32)
ms_ref_greedy(tiny_random100     tiny --random 100 --seed 8 --max-tokens 24)
ms_ref_greedy(tiny_dense         tiny-dense --prompt-ids ${P_CODE} --max-tokens 24)
ms_ref_greedy(tiny_yarn          tiny-yarn --prompt-ids ${P_CHAT} --max-tokens 24)
ms_ref_greedy(tiny_sparse_step   tiny-sparse-step --prompt-ids ${P_CHAT} --max-tokens 24)
ms_ref_greedy(a3b_1layer         a3b-1 --prompt-ids ${P_FOX8} --max-tokens 6)

# The reference's own checks (attention vs a naive loop, MoE vs a dense formulation, the
# safetensors reader across dtypes and shards, causality, RoPE/yarn properties, routing spread).
add_test(NAME ref_selfcheck COMMAND ${MS_PYTHON} ${MS_REF_DIR}/selfcheck.py ${MS_REF_MODELS}/ref-)
set_tests_properties(ref_selfcheck PROPERTIES
  FIXTURES_REQUIRED "ref_model_tiny;ref_model_tiny-f32;ref_model_tiny-f16;ref_model_tiny-shards3;ref_model_tiny-yarn;ref_model_tiny-sparse-step"
  TIMEOUT 300 LABELS reference)

# The comparison harness itself, with a stand-in engine (the reference in float32): it must pass
# an honest float32 result and reject bf16-level error.
add_test(NAME ref_harness_accepts_float32
         COMMAND ${MS_PYTHON} ${MS_REF_DIR}/compare_logits.py ${MS_REF_DIR}/fake_engine.py
                 --model ${MS_REF_MODELS}/ref-tiny --random 64 --seed 7)
add_test(NAME ref_harness_rejects_bf16
         COMMAND ${MS_PYTHON} ${MS_REF_DIR}/compare_logits.py ${MS_REF_DIR}/fake_engine.py
                 --model ${MS_REF_MODELS}/ref-tiny --random 16 --seed 7)
set_tests_properties(ref_harness_accepts_float32 ref_harness_rejects_bf16 PROPERTIES
  FIXTURES_REQUIRED ref_model_tiny TIMEOUT 120 LABELS reference)
set_tests_properties(ref_harness_rejects_bf16 PROPERTIES
  ENVIRONMENT FAKE_ENGINE_BF16=1 PASS_REGULAR_EXPRESSION "FAIL: max abs error")

# Q8_0: `moeserve forward --quantize q8_0` against the reference's own Q8_0 mode (weights and
# matmul inputs quantized as GGUF's Q8_0 blocks, written from the format's definition; float64
# dots). The verdict and its bounds are explained in tests/reference/compare_logits.py ("Q8_0
# mode"): on positions where no quantized value is within 1e-4 quanta of a rounding boundary
# (unambiguous) the float tests' bounds apply unchanged (measured 1.0e-6 x std max, 1e-7 RMS on
# tiny), and the engine must be >= 100x that bound away from the UNQUANTIZED reference (measured
# ~1000x max, ~4000x RMS); elsewhere one legitimately different rounding is carried through the
# layers, so only a loose bound (0.25 x std, relative RMS 2e-2; measured up to 0.065, 7e-3).
# `--random N --unambiguous` draws a prompt all of whose positions are unambiguous.
function(ms_ref_q8 name model)
  add_test(NAME ref_q8_${name}
           COMMAND ${MS_PYTHON} ${MS_REF_DIR}/compare_logits.py $<TARGET_FILE:moeserve>
                   --model ${MS_REF_MODELS}/ref-${model} --quantize q8_0 ${ARGN})
  set_tests_properties(ref_q8_${name} PROPERTIES FIXTURES_REQUIRED ref_model_${model} TIMEOUT 300
                       LABELS reference)
endfunction()
ms_ref_q8(tiny            tiny --random 64 --seed 1 --unambiguous)
# the same through the slower kernels (the test seam of kern_isa_best): each ISA's activation
# quantizer and Q8_0 tile (rows of 1 block: down_proj; 2 blocks: the rest)
ms_ref_q8(tiny_portable   tiny --random 64 --seed 1 --unambiguous)
ms_ref_q8(tiny_avx2       tiny --random 64 --seed 1 --unambiguous)
# on an AMX machine the default run above takes the AMX tiles, so AVX-512 gets its own run
ms_ref_q8(tiny_avx512     tiny --random 64 --seed 1 --unambiguous)
set_tests_properties(ref_q8_tiny_portable PROPERTIES ENVIRONMENT MOESERVE_KERNEL_ISA=portable)
set_tests_properties(ref_q8_tiny_avx2 PROPERTIES ENVIRONMENT MOESERVE_KERNEL_ISA=avx2)
set_tests_properties(ref_q8_tiny_avx512 PROPERTIES ENVIRONMENT MOESERVE_KERNEL_ISA=avx512)
ms_ref_q8(tiny_dense      tiny-dense --random 48 --seed 3 --unambiguous)  # dense MLP, 4-block rows
# HiF4 (`--quantize hif4`): the reference's HiF4 mode (hif4.py's weights, Q8_0 inputs), the Q8_0
# verdict; on tiny the attention projections and expert gate/up are HiF4, down (rows of 32) not
add_test(NAME ref_hif4_tiny
         COMMAND ${MS_PYTHON} ${MS_REF_DIR}/compare_logits.py $<TARGET_FILE:moeserve>
                 --model ${MS_REF_MODELS}/ref-tiny --quantize hif4 --random 64 --seed 1 --unambiguous)
set_tests_properties(ref_hif4_tiny PROPERTIES FIXTURES_REQUIRED ref_model_tiny TIMEOUT 300 LABELS reference)
ms_ref_q8(tiny_tied       tiny-tied --random 48 --seed 2 --unambiguous)   # quantized copy of a tied head
# plain prompts, where rounding flips do happen (tiny_random160: the first at position 55)
ms_ref_q8(tiny_random160  tiny --random 160 --seed 1)
ms_ref_q8(tiny_chat       tiny --prompt-ids ${P_CHAT})
# a3b-sized rows (64-block rows, 128 experts): a position has ~2e4 quantized values, so none is
# unambiguous at 1e-4 quanta and only the loose bound applies (measured: all 8 positions within
# 1.2e-6 x std with AVX-512; with portable/avx2 one position is 0.027 x std off, a flip at a
# value 7e-7 quanta from a boundary). No float reference run, to keep it short.
ms_ref_q8(a3b_1layer      a3b-1 --prompt-ids ${P_FOX8} --min-unambiguous 0 --float-separation 0)

# The Q8_0 harness with the stand-in engine (the reference's Q8_0 mode in float32): it must pass
# it, and reject it with a bug planted (fake_engine.py FAKE_ENGINE_Q8_FAULT).
add_test(NAME ref_q8_harness_accepts_float32
         COMMAND ${MS_PYTHON} ${MS_REF_DIR}/compare_logits.py ${MS_REF_DIR}/fake_engine.py
                 --model ${MS_REF_MODELS}/ref-tiny --quantize q8_0 --random 32 --seed 7 --unambiguous)
set_tests_properties(ref_q8_harness_accepts_float32 PROPERTIES
  FIXTURES_REQUIRED ref_model_tiny TIMEOUT 120 LABELS reference)
foreach(fault no-act-quant f32-scale round-half-away router)
  add_test(NAME ref_q8_harness_rejects_${fault}
           COMMAND ${MS_PYTHON} ${MS_REF_DIR}/compare_logits.py ${MS_REF_DIR}/fake_engine.py
                   --model ${MS_REF_MODELS}/ref-tiny --quantize q8_0 --random 16 --seed 7 --unambiguous)
  set_tests_properties(ref_q8_harness_rejects_${fault} PROPERTIES
    FIXTURES_REQUIRED ref_model_tiny TIMEOUT 120 LABELS reference
    ENVIRONMENT FAKE_ENGINE_Q8_FAULT=${fault}
    PASS_REGULAR_EXPRESSION "FAIL: the Q8_0 engine disagrees with the Q8_0 reference")
endforeach()
