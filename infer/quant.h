/* Weight quantizers (ggml's reference algorithms, bit-compatible block formats): used by
 * modelfs-quantize and by the tests to make quantized weights. Not on any inference path. */
#ifndef MFS_INFER_QUANT_H
#define MFS_INFER_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* Quantize n values (a multiple of the type's block size) of x into `out` (mfs_ggml nbytes of
 * them). Types: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K. 0, or -EINVAL for another type or n. */
int mfs_quantize_row(uint32_t type, const float *x, void *out, int64_t n);

#endif
