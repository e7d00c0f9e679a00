/* Which instruction sets the kernels may use on this CPU. Each format's kernels are registered
 * with the lowest ISA they need (format.h); the matmul entry point takes the best one the CPU
 * (and the MOESERVE_KERNEL_ISA cap) allows. */
#ifndef MS_ENGINE_KERNELS_CPU_H
#define MS_ENGINE_KERNELS_CPU_H

#include <stdbool.h>

/* Ordered: each level includes the ones below it. */
enum kern_isa {
    KERN_ISA_PORTABLE,
    KERN_ISA_AVX2,   /* AVX2 + FMA + F16C */
    KERN_ISA_AVX512, /* AVX-512 F/BW/DQ/VL/VNNI (Ice Lake, Zen 4 and later) */
    KERN_ISA_AMX,    /* AVX-512 and AMX-INT8 tiles (Sapphire Rapids and later, where Linux grants
                      * the process the tile state) */
};

/* The fastest ISA this CPU supports, or a slower one named by the environment variable
 * MOESERVE_KERNEL_ISA (portable, avx2 or avx512; a test seam). Any thread. */
enum kern_isa kern_isa_best(void);
const char *kern_isa_name(enum kern_isa isa);

/* Whether the CPU has AVX512_BF16 (VDPBF16PS) besides the AVX-512 level. */
bool kern_has_dpbf16(void);

#endif
