/*
 * edgebnn runtime: the kernels that generated model code calls.
 *
 * C99, no malloc, no VLAs, no file I/O. Every kernel takes a const params
 * struct plus its data pointers and returns an ebnn_status_t (EBNN_OK == 0).
 * The caller (the generated code) owns every buffer; the only kernel that
 * needs working memory, the fused row-sliced chain, takes a caller-provided
 * scratch buffer and reports its size with ebnn_fused_scratch_bytes().
 *
 * Naming: every kernel exists as a portable reference variant with the
 * suffix _ref (ebnn_bconv2d_ref). Optimized variants for an ISA keep the same
 * params struct and signature (ebnn_bconv2d_neon, ...), so one test binary can
 * compare them.
 *
 * Tensor layout
 *   - NHWC, batch 1: a feature map is [H][W][C] contiguous, row-major. (A
 *     batch of N can be run as N calls.)
 *   - Float tensors are float (IEEE binary32).
 *   - Bitpacked tensors (LCE's format): int32 words packed along the channel
 *     axis, least significant bit first; channel c of a pixel is bit (c % 32)
 *     of word (c / 32); bit 1 means -1 (float x < 0), bit 0 means +1 (x >= 0,
 *     so 0.0f and -0.0f pack as +1); unused padding bits of the last word are
 *     0. A pixel takes EBNN_PACKED_WORDS(C) words. Words are stored as
 *     int32_t (as in the flatbuffer) and handled internally as uint32_t.
 *   - Binary filters (LceBconv2d input 1): OHWI, packed along I:
 *     [out_c][filter_h][filter_w][EBNN_PACKED_WORDS(in_c)] int32 words.
 *   - Float conv filters (CONV_2D): OHWI float [out_c][fh][fw][in_c].
 *     Depthwise filters (DEPTHWISE_CONV_2D): [1][fh][fw][in_c*depth_mult].
 *     Fully connected weights: [out_features][in_features] (TFLite's layout).
 *
 * Padding (TFLite's ComputePaddingHeightWidth): for SAME,
 *   out = ceil(in / stride), and with eff = (f - 1) * dilation + 1,
 *   total = max((out - 1) * stride + eff - in, 0), before = total / 2
 *   (the extra pixel of an odd total goes after). For VALID,
 *   out = ceil((in - eff + 1) / stride), before = 0.
 *   ebnn_output_size() and ebnn_padding_before() compute these.
 *
 * Popcount: EBNN_POPCOUNT32(x) counts the set bits of a uint32_t: the
 * compiler builtin where it is a native instruction (x86 with __POPCNT__,
 * AArch64) or with -DEBNN_USE_BUILTIN_POPCOUNT, else an inline SWAR routine
 * (about 12 ALU ops, no table, no libgcc call: GCC lowers __builtin_popcount
 * to a ~20-instruction __popcountsi2 call on Cortex-M). A target may define
 * EBNN_POPCOUNT32 itself before including this header.
 */
#ifndef EDGEBNN_FIRMWARE_RUNTIME_EBNN_H_
#define EDGEBNN_FIRMWARE_RUNTIME_EBNN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EBNN_VERSION_MAJOR 0
#define EBNN_VERSION_MINOR 1

/* ------------------------------------------------------------------------ */
/* Status codes                                                              */
/* ------------------------------------------------------------------------ */

typedef int32_t ebnn_status_t;

#define EBNN_OK 0
/* A pointer the kernel needs is NULL. */
#define EBNN_ERROR_NULL_POINTER 1
/* A dimension, stride, dilation or size is out of range or inconsistent. */
#define EBNN_ERROR_BAD_SHAPE 2
/* An enum field (padding, activation, producer kind, ...) is unknown. */
#define EBNN_ERROR_BAD_ENUM 3
/* A combination LCE itself rejects (e.g. SAME zero-padding with bitpacked
 * output or with a fused activation in LceBconv2d). */
#define EBNN_ERROR_UNSUPPORTED 4
/* The scratch buffer given to the fused kernel is too small. */
#define EBNN_ERROR_SCRATCH_TOO_SMALL 5

/* ------------------------------------------------------------------------ */
/* Per-op profile hook                                                        */
/* ------------------------------------------------------------------------ */

/* In a build with -DEBNN_PROFILE the generated NAME_invoke calls
 * ebnn_profile_op(-1) on entry and ebnn_profile_op(k) after its k-th kernel
 * call (k = 0, 1, ... in call order, as listed in the generated header's
 * comment). The application defines the function (the firmware's main.c reads
 * its tick counter there: `edgebnn firmware run --profile`). In any other
 * build the hook compiles to nothing. */
#ifdef EBNN_PROFILE
void ebnn_profile_op(int index);
#define EBNN_PROFILE_OP(index) ebnn_profile_op(index)
#else
#define EBNN_PROFILE_OP(index) ((void)0)
#endif

/* ------------------------------------------------------------------------ */
/* Helpers and enums                                                         */
/* ------------------------------------------------------------------------ */

/* Number of int32 words holding (c) bitpacked channels. */
#define EBNN_PACKED_WORDS(c) (((c) + 31) / 32)

/* EBNN_POPCOUNT32 selection: a definition given by the build wins; else
 * the compiler builtin where it is one instruction (x86 with POPCNT enabled,
 * i.e. -mpopcnt or -march=native; AArch64, where it is CNT + ADDV) or when
 * EBNN_USE_BUILTIN_POPCOUNT is defined; else the inline SWAR routine (all
 * 32-bit Arm: GCC lowers the builtin to a libgcc __popcountsi2 call there). */
#ifndef EBNN_POPCOUNT32
#if defined(EBNN_USE_BUILTIN_POPCOUNT) || defined(__POPCNT__) || \
    defined(__aarch64__)
#define EBNN_POPCOUNT32(x) ((int32_t)__builtin_popcount((unsigned int)(x)))
#else
#define EBNN_POPCOUNT32(x) ebnn_popcount32_swar((uint32_t)(x))
/* Kernels fold several SWAR words together where they can. */
#define EBNN_POPCOUNT32_IS_SWAR 1
#endif
#endif

/* Force inlining of tiny hot helpers even at -Os (GCC/Clang). */
#if defined(__GNUC__)
#define EBNN_INLINE static inline __attribute__((always_inline))
#else
#define EBNN_INLINE static inline
#endif

/* Portable SWAR popcount of one 32-bit word. */
EBNN_INLINE int32_t ebnn_popcount32_swar(uint32_t x) {
  x = x - ((x >> 1) & 0x55555555u);
  x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
  x = (x + (x >> 4)) & 0x0F0F0F0Fu;
  return (int32_t)((x * 0x01010101u) >> 24);
}

/* TFLite's Padding enum values (LceBconv2d's and LceBMaxPool2d's integer
 * "padding" options use the same: 0 = SAME, 1 = VALID). */
typedef int32_t ebnn_padding_t;
#define EBNN_PADDING_SAME 0
#define EBNN_PADDING_VALID 1

/* TFLite's fused activation functions (the flatbuffer enum values). */
typedef int32_t ebnn_activation_t;
#define EBNN_ACT_NONE 0
#define EBNN_ACT_RELU 1
#define EBNN_ACT_RELU_N1_TO_1 2
#define EBNN_ACT_RELU6 3

/* Output size of a conv/pool along one axis (TFLite's formula), 0 if the
 * window does not fit (VALID) or an argument is out of range. */
int32_t ebnn_output_size(int32_t in, int32_t filter, int32_t stride,
                         int32_t dilation, ebnn_padding_t padding);

/* Padding before (top or left) along one axis, as TFLite computes it. */
int32_t ebnn_padding_before(int32_t in, int32_t filter, int32_t stride,
                            int32_t dilation, ebnn_padding_t padding);

/* ------------------------------------------------------------------------ */
/* Binary kernels (LCE custom ops)                                           */
/* ------------------------------------------------------------------------ */

/* LceQuantize: float [n_pixels][channels] -> bitpacked
 * [n_pixels][EBNN_PACKED_WORDS(channels)]; bit = (x < 0). For a feature map,
 * n_pixels = H * W. NaN packs as +1 (bit 0) since NaN < 0 is false. */
typedef struct {
  int32_t n_pixels;
  int32_t channels;
} ebnn_quantize_params_t;

ebnn_status_t ebnn_quantize_ref(const ebnn_quantize_params_t *params,
                                const float *input, int32_t *output);

/* LceDequantize: bitpacked -> float, bit 0 -> +1.0f, bit 1 -> -1.0f.
 * Shares ebnn_quantize_params_t (n_pixels, channels of the float side). */
ebnn_status_t ebnn_dequantize_ref(const ebnn_quantize_params_t *params,
                                  const int32_t *input, float *output);

/* LceBconv2d on bitpacked input (LCE 0.16 semantics, verified bit for bit
 * against its interpreter; see README.md).
 *
 * p = XOR-popcount of the input window against the filter over all
 * filter_h * filter_w taps; taps outside the input read bit 0 (+1), i.e.
 * pad_value 1 ("same-one") costs nothing. K = filter_h * filter_w * in_c.
 * Float output (thresholds == NULL; multiplier, bias = the flatbuffer's
 * post_activation_multiplier/bias): mathematically
 *   y = clamp(K - 2 p) * multiplier[o] + bias[o]
 * with the fused activation clamp on the integer (RELU: [0, K],
 * RELU_N1_TO_1: [-1, 1], RELU6: [0, 6]); computed exactly as LCE rounds it:
 *   y = (float)clamp'(2 p) * m' + b',  m' = (float)(-(double)multiplier[o]),
 *   b' = (float)((double)bias[o] + (double)K * (double)multiplier[o]).
 * SAME with pad_value 0 ("same-zero", padded taps contribute 0): as LCE,
 *   y += (-1.0f * multiplier[o]) * (sum of the +-1 filter values on the
 *   out-of-bounds taps) on pixels whose window sticks out. LCE allows it
 *   only with float output and EBNN_ACT_NONE (else EBNN_ERROR_UNSUPPORTED).
 * Bitpacked output (thresholds != NULL, the flatbuffer's output_threshold,
 *   int32): bit o = (p > thresholds[o]) (popcount units), packed into
 *   EBNN_PACKED_WORDS(out_c) words per pixel, padding bits 0. multiplier and
 *   bias are ignored (NULL; the op's inputs 2 and 3 are -1 then).
 * Output size: ebnn_output_size() per axis.
 */
typedef struct {
  int32_t in_h, in_w, in_c; /* in_c: true channel count (channels_in) */
  int32_t out_c;
  int32_t filter_h, filter_w;
  int32_t stride_h, stride_w;
  int32_t dilation_h, dilation_w;
  ebnn_padding_t padding;
  int32_t pad_value;            /* 0 or 1 (LCE's pad_values) */
  ebnn_activation_t activation; /* float output only */
  const int32_t *filter;        /* [out_c][fh][fw][PACKED_WORDS(in_c)] */
  const float *multiplier;      /* [out_c], float output */
  const float *bias;            /* [out_c], float output */
  const int32_t *thresholds;    /* [out_c], non-NULL => bitpacked output */
  /* Optional (NULL when omitted): the same filter transposed at export time
   * to [fh][fw][PACKED_WORDS(in_c)][out_c] words, read by the _opt kernels
   * (which otherwise transpose it per call); the _ref kernels ignore it. */
  const int32_t *filter_t;
} ebnn_bconv2d_params_t;

/* output: float [out_h][out_w][out_c], or int32_t words
 * [out_h][out_w][PACKED_WORDS(out_c)] when thresholds != NULL (pass the
 * int32_t buffer cast to void *). */
ebnn_status_t ebnn_bconv2d_ref(const ebnn_bconv2d_params_t *params,
                               const int32_t *input, void *output);

/* LceBconv2d with float output whose only reader is an ADD of a tensor of
 * the same shape (a residual block: QuickNet, Bi-Real Net, ResNet-E), as
 * one call, so the bconv's output y is never stored (a pass of the
 * generator). output[i] = act(y[i] + residual[i]), or act(residual[i] +
 * y[i]) when residual_first (the ADD's operand order), with y as
 * ebnn_bconv2d_ref computes it and act the ADD's fused activation: the two
 * ops' results bit for bit. conv.thresholds must be NULL
 * (EBNN_ERROR_UNSUPPORTED); output must not overlap input or residual. */
#define EBNN_BCONV_ADD 1 /* this runtime has ebnn_bconv2d_add */
typedef struct {
  ebnn_bconv2d_params_t conv;
  int32_t residual_first;       /* 0 or 1 */
  ebnn_activation_t activation; /* the ADD's */
} ebnn_bconv2d_add_params_t;

ebnn_status_t ebnn_bconv2d_add_ref(const ebnn_bconv2d_add_params_t *params,
                                   const int32_t *input, const float *residual,
                                   float *output);

/* LceBMaxPool2d: bitwise AND over the window (max of +-1 values), window
 * clamped at the edges (no pad value). channels is the true channel count;
 * input and output are bitpacked with EBNN_PACKED_WORDS(channels) words.
 * (The op's custom options: filter_height/width, stride_height/width and
 * padding as an int, 0 = SAME, 1 = VALID.) */
typedef struct {
  int32_t in_h, in_w, channels;
  int32_t filter_h, filter_w;
  int32_t stride_h, stride_w;
  ebnn_padding_t padding;
} ebnn_bmaxpool2d_params_t;

ebnn_status_t ebnn_bmaxpool2d_ref(const ebnn_bmaxpool2d_params_t *params,
                                  const int32_t *input, int32_t *output);

/* Binary fully connected (what LCE makes of a QuantDense:
 * LceQuantize -> LceDequantize -> FULLY_CONNECTED with +-1 weights):
 *   acc = in_features - 2 * popcount(x XOR w)  (exact dot product of +-1),
 *   y = (float)acc, then y = y * multiplier[o] if multiplier != NULL,
 *   then y = y + bias[o] if bias != NULL, then the fused activation
 *   (float clamp, as TFLite's FULLY_CONNECTED does).
 * input: bitpacked [rows][PACKED_WORDS(in_features)];
 * weights: bitpacked [out_features][PACKED_WORDS(in_features)];
 * output: float [rows][out_features]. */
typedef struct {
  int32_t rows; /* batch rows, 1 for a flattened feature map */
  int32_t in_features;
  int32_t out_features;
  ebnn_activation_t activation;
  const int32_t *weights;
  const float *multiplier; /* [out_features] or NULL */
  const float *bias;       /* [out_features] or NULL */
} ebnn_bdense_params_t;

ebnn_status_t ebnn_bdense_ref(const ebnn_bdense_params_t *params,
                              const int32_t *input, float *output);

/* Level-coded convolution (ebnn_level.c; opt: ebnn_bconv_opt.c): a float
 * CONV_2D (or a FULLY_CONNECTED, as a 1x1 convolution over rows x 1 pixels)
 * whose input holds only the integer codes 0..levels and whose filter is
 * +-s[o] in every tap of output channel o. The graph pass that makes it
 * proves both from the model (DoReFa-Net's k-bit activations
 * ROUND(MUL(RELU(MINIMUM(x, 1)), 3)) and its sign weights times a folded
 * batch-norm scale); see edgebnn/codegen/passes.py.
 *
 * The input's codes are packed into the scratch as bitplanes: plane j holds
 * bit j of every code, EBNN_PACKED_WORDS(in_c) words per pixel, LSB first,
 * plane after plane ([planes][in_h][in_w][words]); planes = the bit length
 * of levels. code(x) = 0 for x < 0.5 (and NaN), levels for x >= levels,
 * else (int)(x + 0.5f): the code itself for an integer x. Then per output
 * pixel and channel o, with p_j the XOR-popcount of plane j's window
 * against the filter's sign bits (bit 1 = negative weight; taps outside the
 * input read 0 bits, i.e. code 0, as the float op's zero padding) and pop
 * the popcount of channel o's filter bits over all taps:
 *   S = sum_j 2^j (p_j - pop)   (= sum over taps of sign * code, exact)
 *   y = act(conv.multiplier[o] * (float)S + conv.bias[o])
 * TFLite rounds after every product and addition, this once, so outputs
 * differ from the float op's by float rounding only.
 *
 * conv: the geometry and the sign bits ([out_c][fh][fw][words], and
 *   filter_t as for LceBconv2d); pad_value 1, activation NONE, thresholds
 *   NULL; multiplier = s[o] (times the input's scale when the pass folded
 *   one), bias = the op's bias (zeros without one).
 * filter_pop: pop per channel, or NULL (computed per call); the reference
 *   always counts it from the filter.
 * Scratch: ebnn_lconv2d_scratch_bytes() bytes, 4-byte aligned. */
typedef struct {
  ebnn_bconv2d_params_t conv;
  int32_t levels;               /* codes 0..levels, 1 <= levels <= 255 */
  ebnn_activation_t activation; /* the float op's fused activation */
  const int32_t *filter_pop;    /* [out_c] or NULL */
} ebnn_lconv2d_params_t;

size_t ebnn_lconv2d_scratch_bytes(const ebnn_lconv2d_params_t *params);
ebnn_status_t ebnn_lconv2d_ref(const ebnn_lconv2d_params_t *params,
                               const float *input, float *output,
                               void *scratch, size_t scratch_bytes);
ebnn_status_t ebnn_lconv2d_opt(const ebnn_lconv2d_params_t *params,
                               const float *input, float *output,
                               void *scratch, size_t scratch_bytes);

/* ------------------------------------------------------------------------ */
/* Float kernels (TFLite builtin semantics)                                  */
/* ------------------------------------------------------------------------ */

/* CONV_2D: y = act(sum_{ky,kx,ci} x * w + bias[o]); taps outside the input
 * contribute 0 (TFLite zero padding). Accumulation order: bias is added
 * after the sum over ky, kx, ci (in that order), whatever the layout.
 * filter_layout EBNN_FILTER_OHWI (0, the flatbuffer's) or EBNN_FILTER_HWIO
 * ([fh][fw][in_c][out_c], transposed at export time): the same results bit
 * for bit, HWIO lets compilers vectorize over output channels.
 * EBNN_FILTER_HWIO16: HWIO cut into blocks of 16 output channels, each
 * block's [fh][fw][in_c][16] slice contiguous, one after the other (the
 * last block is out_c % 16 wide when that is not 0): element (o, k) at
 * (o / 16) * 16 * K + k * width + o % 16, K = fh * fw * in_c. The "opt"
 * kernels read a block's slice as one stream (in HWIO it is one cache line
 * per tap, 4 * out_c bytes apart). Written by the generator for "opt";
 * the fused kernels do not take it (EBNN_ERROR_UNSUPPORTED). */
typedef int32_t ebnn_filter_layout_t;
#define EBNN_FILTER_OHWI 0
#define EBNN_FILTER_HWIO 1
#define EBNN_FILTER_HWIO16 2

typedef struct {
  int32_t in_h, in_w, in_c;
  int32_t out_c;
  int32_t filter_h, filter_w;
  int32_t stride_h, stride_w;
  int32_t dilation_h, dilation_w;
  ebnn_padding_t padding;
  ebnn_activation_t activation;
  const float *filter; /* [out_c][fh][fw][in_c], or HWIO / HWIO16, see filter_layout */
  const float *bias;   /* [out_c] or NULL */
  ebnn_filter_layout_t filter_layout; /* 0 (OHWI) when omitted */
} ebnn_conv2d_params_t;

ebnn_status_t ebnn_conv2d_ref(const ebnn_conv2d_params_t *params,
                              const float *input, float *output);

/* DEPTHWISE_CONV_2D: out channel o = ci * depth_multiplier + m. */
typedef struct {
  int32_t in_h, in_w, in_c;
  int32_t depth_multiplier;
  int32_t filter_h, filter_w;
  int32_t stride_h, stride_w;
  int32_t dilation_h, dilation_w;
  ebnn_padding_t padding;
  ebnn_activation_t activation;
  const float *filter; /* [1][fh][fw][in_c * depth_multiplier] */
  const float *bias;   /* [in_c * depth_multiplier] or NULL */
} ebnn_depthwise_conv2d_params_t;

ebnn_status_t ebnn_depthwise_conv2d_ref(
    const ebnn_depthwise_conv2d_params_t *params, const float *input,
    float *output);

/* FULLY_CONNECTED: y[r][o] = act(sum_i x[r][i] * w[o][i] + bias[o]).
 * weights_layout EBNN_WEIGHTS_OI (0, the flatbuffer's [out][in]) or
 * EBNN_WEIGHTS_IO ([in][out], transposed at export time for the "opt"
 * kernels, which then stream the weights in order): the same results bit
 * for bit. */
typedef int32_t ebnn_weights_layout_t;
#define EBNN_WEIGHTS_OI 0
#define EBNN_WEIGHTS_IO 1

typedef struct {
  int32_t rows;
  int32_t in_features;
  int32_t out_features;
  ebnn_activation_t activation;
  const float *weights; /* [out_features][in_features], or IO, see weights_layout */
  const float *bias;    /* [out_features] or NULL */
  ebnn_weights_layout_t weights_layout; /* 0 (OI) when omitted */
} ebnn_fully_connected_params_t;

ebnn_status_t ebnn_fully_connected_ref(
    const ebnn_fully_connected_params_t *params, const float *input,
    float *output);

/* MAX_POOL_2D and AVERAGE_POOL_2D: window clamped to the input (padding is
 * never read); average divides by the number of in-bounds taps. */
typedef struct {
  int32_t in_h, in_w, channels;
  int32_t filter_h, filter_w;
  int32_t stride_h, stride_w;
  ebnn_padding_t padding;
  ebnn_activation_t activation;
} ebnn_pool2d_params_t;

ebnn_status_t ebnn_max_pool2d_ref(const ebnn_pool2d_params_t *params,
                                  const float *input, float *output);
ebnn_status_t ebnn_average_pool2d_ref(const ebnn_pool2d_params_t *params,
                                      const float *input, float *output);

/* MEAN over H and W of a [H][W][C] map -> [C] (keep_dims only changes the
 * shape, not the memory layout). sum in row-major order, then / (H * W). */
typedef struct {
  int32_t in_h, in_w, channels;
} ebnn_mean_params_t;

ebnn_status_t ebnn_mean_hw_ref(const ebnn_mean_params_t *params,
                               const float *input, float *output);

/* ADD and MUL with broadcasting of b over a:
 *   out[i] = act(a[i] (+|*) b[i % b_size])
 * b_size == size: elementwise; b_size == C (the last axis): a per-channel
 * vector; b_size == 1: a scalar. (Both ops are commutative in IEEE float,
 * so a broadcast first operand is passed as b.) */
typedef struct {
  int32_t size;
  int32_t b_size;
  ebnn_activation_t activation;
} ebnn_binary_params_t;

ebnn_status_t ebnn_add_ref(const ebnn_binary_params_t *params, const float *a,
                           const float *b, float *output);
ebnn_status_t ebnn_mul_ref(const ebnn_binary_params_t *params, const float *a,
                           const float *b, float *output);

/* SOFTMAX over the last axis of [rows][cols]:
 *   y = exp(beta * (x - max)) / sum(exp(beta * (x - max))). */
typedef struct {
  int32_t rows, cols;
  float beta;
} ebnn_softmax_params_t;

ebnn_status_t ebnn_softmax_ref(const ebnn_softmax_params_t *params,
                               const float *input, float *output);

/* CONCATENATION along any axis: view each input as [outer][inner_i], where
 * outer is the product of the dims before the axis and inner_i the product
 * of input i's dims from the axis on; the output is [outer][sum inner_i].
 * For channels of an NHWC map: outer = H * W, inner_i = C_i. */
#define EBNN_CONCAT_MAX_INPUTS 16
typedef struct {
  int32_t outer;
  int32_t n_inputs;
  int32_t inner[EBNN_CONCAT_MAX_INPUTS];
  ebnn_activation_t activation;
} ebnn_concat_params_t;

ebnn_status_t ebnn_concatenation_ref(const ebnn_concat_params_t *params,
                                     const float *const *inputs,
                                     float *output);

/* PAD with a constant (PAD: 0.0f) of a tensor of up to 4 dims (leading dims
 * of size 1 for fewer). out dim d = dims[d] + before[d] + after[d]. */
typedef struct {
  int32_t dims[4];
  int32_t before[4];
  int32_t after[4];
  float value;
} ebnn_pad_params_t;

ebnn_status_t ebnn_pad_ref(const ebnn_pad_params_t *params, const float *input,
                           float *output);

/* Elementwise activations (RELU, RELU6, RELU_N1_TO_1, TANH, LOGISTIC,
 * LEAKY_RELU with alpha, HARD_SWISH: x * relu6(x + 3) / 6). */
typedef struct {
  int32_t size;
  float alpha; /* LEAKY_RELU only */
} ebnn_unary_params_t;

ebnn_status_t ebnn_relu_ref(const ebnn_unary_params_t *params,
                            const float *input, float *output);
ebnn_status_t ebnn_relu6_ref(const ebnn_unary_params_t *params,
                             const float *input, float *output);
ebnn_status_t ebnn_relu_n1_to_1_ref(const ebnn_unary_params_t *params,
                                    const float *input, float *output);
ebnn_status_t ebnn_tanh_ref(const ebnn_unary_params_t *params,
                            const float *input, float *output);
ebnn_status_t ebnn_logistic_ref(const ebnn_unary_params_t *params,
                                const float *input, float *output);
ebnn_status_t ebnn_leaky_relu_ref(const ebnn_unary_params_t *params,
                                  const float *input, float *output);
ebnn_status_t ebnn_hard_swish_ref(const ebnn_unary_params_t *params,
                                  const float *input, float *output);

/* ------------------------------------------------------------------------ */
/* More builtins: broadcasting elementwise ops and data movement             */
/* (ebnn_eltwise.c, ebnn_shape.c; the ops larq-zoo's models emit)            */
/* ------------------------------------------------------------------------ */

/* Largest rank the kernels below take (TFLite's broadcasting and transpose
 * kernels take up to 6 dims). Shapes of lower rank are padded with leading
 * dims of size 1 by the caller. */
#define EBNN_MAX_DIMS 6

/* Elementwise ops on two float tensors with NumPy/TFLite broadcasting:
 * out_dims[d] = max(a_dims[d], b_dims[d]), each of a_dims[d] and b_dims[d]
 * equal to out_dims[d] or 1 (a dim of 1 is repeated); row-major, the last
 * dim fastest.
 *   SUB:     out = act(a - b)
 *   MINIMUM: out = a < b ? a : b   (TFLite's MinimumOp)
 *   MAXIMUM: out = a > b ? a : b   (TFLite's MaximumOp)
 *   PRELU:   out = a >= 0 ? a : a * b   (a = input, b = alpha)
 * activation: SUB only (EBNN_ACT_NONE for the others). */
typedef struct {
  int32_t rank; /* 1..EBNN_MAX_DIMS */
  int32_t a_dims[EBNN_MAX_DIMS];
  int32_t b_dims[EBNN_MAX_DIMS];
  ebnn_activation_t activation;
} ebnn_broadcast_params_t;

ebnn_status_t ebnn_sub_ref(const ebnn_broadcast_params_t *params,
                           const float *a, const float *b, float *output);
ebnn_status_t ebnn_minimum_ref(const ebnn_broadcast_params_t *params,
                               const float *a, const float *b, float *output);
ebnn_status_t ebnn_maximum_ref(const ebnn_broadcast_params_t *params,
                               const float *a, const float *b, float *output);
ebnn_status_t ebnn_prelu_ref(const ebnn_broadcast_params_t *params,
                             const float *a, const float *b, float *output);

/* ABS: out = fabsf(x) (ebnn_unary_params_t, alpha unused). */
ebnn_status_t ebnn_abs_ref(const ebnn_unary_params_t *params,
                           const float *input, float *output);

/* ROUND: to the nearest integer, ties to even (TFLite's RoundToNearest:
 * 0.5 -> 0, 1.5 -> 2, -2.5 -> -2). ebnn_unary_params_t, alpha unused. */
ebnn_status_t ebnn_round_ref(const ebnn_unary_params_t *params,
                             const float *input, float *output);

/* The data-movement kernels copy 32-bit elements (float or int32 words)
 * without looking at them, so they take void pointers. */

/* SPLIT and SPLIT_V: view the input as [outer][axis][inner] (outer = the
 * product of the dims before the split axis, inner of those after it);
 * output i is [outer][sizes[i]][inner], its rows taken in order along the
 * axis; sum(sizes) == axis. */
#define EBNN_SPLIT_MAX_OUTPUTS 16
typedef struct {
  int32_t outer;
  int32_t axis;
  int32_t inner;
  int32_t n_outputs;
  int32_t sizes[EBNN_SPLIT_MAX_OUTPUTS];
} ebnn_split_params_t;

ebnn_status_t ebnn_split_ref(const ebnn_split_params_t *params,
                             const void *input, void *const *outputs);

/* STRIDED_SLICE and SLICE, after the generator resolved TFLite's masks:
 * out[i_0..i_{r-1}] = in[begin_0 + i_0 * strides_0, ...] for
 * 0 <= i_d < out_dims[d]; a stride may be negative; every index read must
 * lie in [0, in_dims[d]). Shrunk axes are dims of size 1 here. */
typedef struct {
  int32_t rank;
  int32_t in_dims[EBNN_MAX_DIMS];
  int32_t begin[EBNN_MAX_DIMS];
  int32_t strides[EBNN_MAX_DIMS];
  int32_t out_dims[EBNN_MAX_DIMS];
} ebnn_slice_params_t;

ebnn_status_t ebnn_strided_slice_ref(const ebnn_slice_params_t *params,
                                     const void *input, void *output);

/* TRANSPOSE: out dim d is in dim perm[d]:
 * out[i_0..i_{r-1}] = in[j] with j[perm[d]] = i_d. */
typedef struct {
  int32_t rank;
  int32_t in_dims[EBNN_MAX_DIMS];
  int32_t perm[EBNN_MAX_DIMS];
} ebnn_transpose_params_t;

ebnn_status_t ebnn_transpose_ref(const ebnn_transpose_params_t *params,
                                 const void *input, void *output);

/* ------------------------------------------------------------------------ */
/* Fused row-sliced chain                                                    */
/* ------------------------------------------------------------------------ */

/* producer (CONV_2D on float input, or LceBconv2d with float output on
 * bitpacked input) -> optional MAX_POOL_2D -> up to EBNN_FUSED_MAX_STAGES
 * MUL/ADD stages with a per-channel vector or a scalar -> LceQuantize,
 * computed a few rows at a time: the float map between the ops is never
 * materialized. Bit for bit the same as calling the unfused kernels one
 * after another (they share the per-pixel routines).
 *
 * Scratch: ebnn_fused_scratch_bytes(params) bytes (float aligned), holding
 * pool.filter_h rows of the producer's output plus one pixel of channels
 * (one producer row without a pool). */
#define EBNN_FUSED_MAX_STAGES 4

typedef int32_t ebnn_producer_kind_t;
#define EBNN_PRODUCER_CONV2D 0
#define EBNN_PRODUCER_BCONV2D 1

typedef int32_t ebnn_stage_kind_t;
#define EBNN_STAGE_MUL 0
#define EBNN_STAGE_ADD 1

typedef struct {
  ebnn_stage_kind_t kind;
  int32_t size; /* 1 (scalar) or the producer's out_c (per channel) */
  const float *values;
  ebnn_activation_t activation;
} ebnn_fused_stage_t;

typedef struct {
  ebnn_producer_kind_t producer;
  const ebnn_conv2d_params_t *conv;   /* producer == EBNN_PRODUCER_CONV2D */
  const ebnn_bconv2d_params_t *bconv; /* producer == EBNN_PRODUCER_BCONV2D,
                                         thresholds must be NULL */
  int32_t has_pool;
  ebnn_pool2d_params_t pool; /* in_h/in_w/channels are filled from the
                                producer's output by the kernel if 0 */
  int32_t n_stages;
  ebnn_fused_stage_t stages[EBNN_FUSED_MAX_STAGES];
} ebnn_fused_params_t;

/* Bytes of scratch the fused kernel needs, 0 on invalid params. */
size_t ebnn_fused_scratch_bytes(const ebnn_fused_params_t *params);

/* Output shape of the fused chain (after the pool if any); channels are the
 * producer's out_c, the output holds EBNN_PACKED_WORDS(channels) words per
 * pixel. */
ebnn_status_t ebnn_fused_output_shape(const ebnn_fused_params_t *params,
                                      int32_t *out_h, int32_t *out_w,
                                      int32_t *channels);

/* input: float [in_h][in_w][in_c] for CONV2D, bitpacked int32 words for
 * BCONV2D (pass as const void *). output: bitpacked int32 words. */
ebnn_status_t ebnn_fused_conv_pool_affine_quantize_ref(
    const ebnn_fused_params_t *params, const void *input, int32_t *output,
    void *scratch, size_t scratch_bytes);

/* ------------------------------------------------------------------------ */
/* Optimized variants (kernel set "opt", the *_opt.c files)                 */
/* ------------------------------------------------------------------------ */

/* Same params, results (bit for bit) and statuses as the _ref kernels; loops
 * reordered to vectorize across output channels (the filter is transposed
 * per call into a ~16 KiB stack buffer: for hosts, not 32 KiB MCUs). Cases
 * outside their fast paths are delegated to the _ref kernels. */
ebnn_status_t ebnn_bconv2d_opt(const ebnn_bconv2d_params_t *params,
                               const int32_t *input, void *output);
ebnn_status_t ebnn_bconv2d_add_opt(const ebnn_bconv2d_add_params_t *params,
                                   const int32_t *input, const float *residual,
                                   float *output);
ebnn_status_t ebnn_fused_conv_pool_affine_quantize_opt(
    const ebnn_fused_params_t *params, const void *input, int32_t *output,
    void *scratch, size_t scratch_bytes);
/* ebnn_conv_opt.c: CONV_2D over an HWIO filter; ebnn_fused_opt.c: the
 * fused chain; ebnn_float_opt.c: depthwise (depth_multiplier 1);
 * ebnn_fc_opt.c: FULLY_CONNECTED; ebnn_quantize_opt.c: LceQuantize;
 * ebnn_bconv_opt.c: LceBconv2d and the level-coded convolution;
 * ebnn_pool_opt.c: MAX_POOL_2D and AVERAGE_POOL_2D; ebnn_eltwise_opt.c:
 * ADD, MUL, SUB, MINIMUM, MAXIMUM, PRELU. */
/* Threads for the _opt kernels (ebnn_threads.c; host builds with
 * -DEBNN_THREADS=1 -pthread, else always 1): n in [1, 64], else
 * EBNN_ERROR_BAD_SHAPE. Default: $EBNN_NUM_THREADS, else 1. Results are
 * identical for every n. The workers are started at the first kernel call
 * that uses them and kept (they sleep when idle). One kernel call uses them
 * at a time: a call from a second thread while they are busy runs on its
 * own thread (each model's arena still serves one invoke at a time). */
ebnn_status_t ebnn_set_threads(int32_t n);
ebnn_status_t ebnn_conv2d_opt(const ebnn_conv2d_params_t *params,
                              const float *input, float *output);
ebnn_status_t ebnn_depthwise_conv2d_opt(
    const ebnn_depthwise_conv2d_params_t *params, const float *input,
    float *output);
ebnn_status_t ebnn_add_opt(const ebnn_binary_params_t *params, const float *a,
                           const float *b, float *output);
ebnn_status_t ebnn_mul_opt(const ebnn_binary_params_t *params, const float *a,
                           const float *b, float *output);
ebnn_status_t ebnn_quantize_opt(const ebnn_quantize_params_t *params,
                                const float *input, int32_t *output);
ebnn_status_t ebnn_fully_connected_opt(
    const ebnn_fully_connected_params_t *params, const float *input,
    float *output);
ebnn_status_t ebnn_max_pool2d_opt(const ebnn_pool2d_params_t *params,
                                  const float *input, float *output);
ebnn_status_t ebnn_average_pool2d_opt(const ebnn_pool2d_params_t *params,
                                      const float *input, float *output);
ebnn_status_t ebnn_sub_opt(const ebnn_broadcast_params_t *params,
                           const float *a, const float *b, float *output);
ebnn_status_t ebnn_minimum_opt(const ebnn_broadcast_params_t *params,
                               const float *a, const float *b, float *output);
ebnn_status_t ebnn_maximum_opt(const ebnn_broadcast_params_t *params,
                               const float *a, const float *b, float *output);
ebnn_status_t ebnn_prelu_opt(const ebnn_broadcast_params_t *params,
                             const float *a, const float *b, float *output);

/* ------------------------------------------------------------------------ */
/* Kernel set "mcu" (M-profile cores; ebnn_bconv_mcu.c, ebnn_bdense_mcu.c,   */
/* ebnn_fused_mcu.c)                                                         */
/* ------------------------------------------------------------------------ */

/* Same params, results (bit for bit) and statuses as the _ref kernels:
 * popcount without a popcount instruction (SWAR with shared folding, USADA8
 * on DSP cores), LCE's fused multiplier/bias computed once per call, the
 * image stem's conv summed from registers. About 2 KiB of stack at most;
 * cases outside their fast paths are delegated to the _ref kernels. */
ebnn_status_t ebnn_bconv2d_mcu(const ebnn_bconv2d_params_t *params,
                               const int32_t *input, void *output);
ebnn_status_t ebnn_bdense_mcu(const ebnn_bdense_params_t *params,
                              const int32_t *input, float *output);
ebnn_status_t ebnn_fused_conv_pool_affine_quantize_mcu(
    const ebnn_fused_params_t *params, const void *input, int32_t *output,
    void *scratch, size_t scratch_bytes);

/* ======================================================================== */
/* Int8 kernels (TFLite's integer arithmetic, reference semantics)           */
/* ======================================================================== */
/*
 * Files: ebnn_int8_common.c (fixed-point helpers), ebnn_int8_conv.c,
 * ebnn_int8_fc.c, ebnn_int8_eltwise.c (ADD, MUL), ebnn_int8_quantize.c
 * (QUANTIZE, DEQUANTIZE: the only int8 file using float), ebnn_int8_pool.c,
 * ebnn_int8_softmax.c, ebnn_int8_shape.c. Bit-exact with TFLite's
 * reference kernels (BUILTIN_REF); see README.md for what each traces to.
 *
 * Quantization: real = scale * (q - zero_point). A real multiplier M > 0 is
 * given as (multiplier, shift) with M ~= multiplier * 2^(shift - 31) and
 * multiplier in [2^30, 2^31) (or 0), exactly as TFLite's QuantizeMultiplier
 * computes it (edgebnn.codegen.quant.quantize_multiplier does it in Python).
 * Activation ranges (act_min, act_max) are in the quantized output domain,
 * within [-128, 127] (TFLite's CalculateActivationRangeQuantized;
 * edgebnn.codegen.quant.activation_range). Int8 filters are symmetric
 * (zero point 0), as TFLite requires; biases are int32 with scale
 * input_scale * filter_scale[o] and zero point 0.
 */

/* gemmlowp's SaturatingRoundingDoublingHighMul: round(a * b / 2^31) with
 * ties away from zero, INT32_MIN * INT32_MIN saturating to INT32_MAX. */
int32_t ebnn_int8_srdhm(int32_t a, int32_t b);

/* gemmlowp's RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties
 * away from zero; exponent in [0, 31]. */
int32_t ebnn_int8_rounding_divide_by_pot(int32_t x, int32_t exponent);

/* TFLite's MultiplyByQuantizedMultiplier (double rounding):
 * RoundingDivideByPOT(SRDHM(x * 2^max(shift, 0), multiplier), max(-shift, 0)).
 * The left shift wraps like TFLite's int32 multiply when x * 2^shift does
 * not fit (TFLite's callers never let that happen). */
int32_t ebnn_int8_multiply_by_quantized_multiplier(int32_t x,
                                                   int32_t multiplier,
                                                   int32_t shift);

/* CONV_2D, int8 input/output, int8 per-channel filter (OHWI), int32 bias:
 *   acc = sum_{ky,kx,ci in bounds} w * (x - input_zero_point) + bias[o]
 *   y = clamp(MBQM(acc, output_multiplier[o], output_shift[o])
 *             + output_zero_point, act_min, act_max)
 * Taps outside the input are skipped (they would read the input zero
 * point: TFLite's zero padding in the real domain). */
typedef struct {
  int32_t in_h, in_w, in_c;
  int32_t out_c;
  int32_t filter_h, filter_w;
  int32_t stride_h, stride_w;
  int32_t dilation_h, dilation_w;
  ebnn_padding_t padding;
  int32_t input_zero_point;
  int32_t output_zero_point;
  int32_t act_min, act_max;
  const int8_t *filter;             /* [out_c][fh][fw][in_c] */
  const int32_t *bias;              /* [out_c] or NULL */
  const int32_t *output_multiplier; /* [out_c] */
  const int32_t *output_shift;      /* [out_c] */
} ebnn_int8_conv2d_params_t;

ebnn_status_t ebnn_int8_conv2d_ref(const ebnn_int8_conv2d_params_t *params,
                                   const int8_t *input, int8_t *output);
/* Kernel set "mcu" (ebnn_int8_conv_mcu.c): SXTB16 + SMLAD on DSP cores,
 * the same output bytes as ebnn_int8_conv2d_ref (which it calls elsewhere). */
ebnn_status_t ebnn_int8_conv2d_mcu(const ebnn_int8_conv2d_params_t *params,
                                   const int8_t *input, int8_t *output);

/* DEPTHWISE_CONV_2D, per channel: out channel o = ci * depth_multiplier + m,
 * filter [1][fh][fw][in_c * depth_multiplier], same arithmetic as CONV_2D. */
typedef struct {
  int32_t in_h, in_w, in_c;
  int32_t depth_multiplier;
  int32_t filter_h, filter_w;
  int32_t stride_h, stride_w;
  int32_t dilation_h, dilation_w;
  ebnn_padding_t padding;
  int32_t input_zero_point;
  int32_t output_zero_point;
  int32_t act_min, act_max;
  const int8_t *filter;             /* [1][fh][fw][in_c * depth_multiplier] */
  const int32_t *bias;              /* [in_c * depth_multiplier] or NULL */
  const int32_t *output_multiplier; /* [in_c * depth_multiplier] */
  const int32_t *output_shift;      /* [in_c * depth_multiplier] */
} ebnn_int8_depthwise_conv2d_params_t;

ebnn_status_t ebnn_int8_depthwise_conv2d_ref(
    const ebnn_int8_depthwise_conv2d_params_t *params, const int8_t *input,
    int8_t *output);

/* FULLY_CONNECTED, int8:
 *   acc = sum_i (x[r][i] - input_zero_point) * (w[o][i] - weights_zero_point)
 *         + bias[o]
 *   y = clamp(MBQM(acc, mult[k], shift[k]) + output_zero_point, act_min,
 *             act_max), k = o when per_channel, else 0. */
typedef struct {
  int32_t rows;
  int32_t in_features;
  int32_t out_features;
  int32_t input_zero_point;
  int32_t weights_zero_point;
  int32_t output_zero_point;
  int32_t act_min, act_max;
  int32_t per_channel;              /* 0: one multiplier, 1: out_features */
  const int8_t *weights;            /* [out_features][in_features] */
  const int32_t *bias;              /* [out_features] or NULL */
  const int32_t *output_multiplier; /* [1] or [out_features] */
  const int32_t *output_shift;      /* [1] or [out_features] */
} ebnn_int8_fully_connected_params_t;

ebnn_status_t ebnn_int8_fully_connected_ref(
    const ebnn_int8_fully_connected_params_t *params, const int8_t *input,
    int8_t *output);

/* ADD, int8 (TFLite's rescaling to a common scale):
 *   a' = MBQM((a - a_zero_point) << left_shift, a_multiplier, a_shift), same
 *   for b; y = clamp(MBQM(a' + b', output_multiplier, output_shift)
 *                    + output_zero_point, act_min, act_max).
 * left_shift is 20 for int8; the multipliers come from
 * edgebnn.codegen.quant.add_params. b broadcasts as in ebnn_add_ref
 * (b_size == size, the last axis, or 1); to broadcast the first operand,
 * swap the operands and their parameters. */
typedef struct {
  int32_t size;
  int32_t b_size;
  int32_t left_shift;
  int32_t a_zero_point, a_multiplier, a_shift;
  int32_t b_zero_point, b_multiplier, b_shift;
  int32_t output_zero_point, output_multiplier, output_shift;
  int32_t act_min, act_max;
} ebnn_int8_add_params_t;

ebnn_status_t ebnn_int8_add_ref(const ebnn_int8_add_params_t *params,
                                const int8_t *a, const int8_t *b,
                                int8_t *output);

/* MUL, int8: y = clamp(MBQM((a - a_zp) * (b - b_zp), output_multiplier,
 * output_shift) + output_zero_point, act_min, act_max); broadcasting as
 * ADD. */
typedef struct {
  int32_t size;
  int32_t b_size;
  int32_t a_zero_point;
  int32_t b_zero_point;
  int32_t output_zero_point, output_multiplier, output_shift;
  int32_t act_min, act_max;
} ebnn_int8_mul_params_t;

ebnn_status_t ebnn_int8_mul_ref(const ebnn_int8_mul_params_t *params,
                                const int8_t *a, const int8_t *b,
                                int8_t *output);

/* QUANTIZE float -> int8: y = clamp(round(x / scale) + zero_point) with
 * round half away from zero in float (TFLite's AffineQuantize). NaN maps to
 * zero_point. */
typedef struct {
  int32_t size;
  float scale;
  int32_t zero_point;
} ebnn_int8_affine_params_t;

ebnn_status_t ebnn_int8_quantize_ref(const ebnn_int8_affine_params_t *params,
                                     const float *input, int8_t *output);

/* DEQUANTIZE int8 -> float: y = scale * (x - zero_point), one rounding. */
ebnn_status_t ebnn_int8_dequantize_ref(const ebnn_int8_affine_params_t *params,
                                       const int8_t *input, float *output);

/* QUANTIZE int8 -> int8 (requantize): y = clamp(MBQM(x - input_zero_point,
 * multiplier, shift) + output_zero_point), multiplier for
 * input_scale / output_scale. */
typedef struct {
  int32_t size;
  int32_t input_zero_point;
  int32_t output_zero_point;
  int32_t multiplier, shift;
} ebnn_int8_requantize_params_t;

ebnn_status_t ebnn_int8_requantize_ref(
    const ebnn_int8_requantize_params_t *params, const int8_t *input,
    int8_t *output);

/* MAX_POOL_2D / AVERAGE_POOL_2D, int8 (input and output share scale and
 * zero point, as TFLite requires). Window clamped to the input. Max: the
 * largest value, then clamp to [act_min, act_max]. Average: sum s over the
 * n in-bounds taps, rounded half away from zero: (s + n/2) / n for s > 0,
 * (s - n/2) / n otherwise (C division truncates), then the clamp. */
typedef struct {
  int32_t in_h, in_w, channels;
  int32_t filter_h, filter_w;
  int32_t stride_h, stride_w;
  ebnn_padding_t padding;
  int32_t act_min, act_max;
} ebnn_int8_pool2d_params_t;

ebnn_status_t ebnn_int8_max_pool2d_ref(const ebnn_int8_pool2d_params_t *params,
                                       const int8_t *input, int8_t *output);
ebnn_status_t ebnn_int8_average_pool2d_ref(
    const ebnn_int8_pool2d_params_t *params, const int8_t *input,
    int8_t *output);

/* MEAN over H and W of [H][W][C] -> [C], int8 (TFLite's integer
 * QuantizedMeanOrSum): (multiplier, shift) is input_scale / output_scale;
 * 1/n (n = H * W) is folded in once, k = min(floor(log2 n), 31 + shift),
 * m' = (multiplier << k) / n (int64, truncated), s' = shift - k; then
 *   y = clamp(MBQM(sum x - n * input_zero_point, m', s')
 *             + output_zero_point, -128, 127). */
typedef struct {
  int32_t in_h, in_w, channels;
  int32_t input_zero_point;
  int32_t output_zero_point;
  int32_t multiplier, shift;
} ebnn_int8_mean_params_t;

ebnn_status_t ebnn_int8_mean_hw_ref(const ebnn_int8_mean_params_t *params,
                                    const int8_t *input, int8_t *output);

/* SOFTMAX over the last axis of [rows][cols], int8 in, int8 out with scale
 * 1/256 and zero point -128 (TFLite's only int8 output quantization):
 * gemmlowp fixed point (Q5.26 differences, exp_on_negative_values, a Q12.19
 * sum, its reciprocal). input_multiplier, input_left_shift, diff_min come
 * from edgebnn.codegen.quant.softmax_params (TFLite's
 * PreprocessSoftmaxScaling and CalculateInputRadius for beta, input_scale). */
typedef struct {
  int32_t rows, cols;
  int32_t input_multiplier;
  int32_t input_left_shift;
  int32_t diff_min;
} ebnn_int8_softmax_params_t;

ebnn_status_t ebnn_int8_softmax_ref(const ebnn_int8_softmax_params_t *params,
                                    const int8_t *input, int8_t *output);

/* CONCATENATION of int8 tensors sharing one scale and zero point (TFLite
 * requires it; the converter inserts requantize ops otherwise): the layout
 * of ebnn_concatenation_ref; activation must be EBNN_ACT_NONE (else
 * EBNN_ERROR_UNSUPPORTED). */
ebnn_status_t ebnn_int8_concatenation_ref(const ebnn_concat_params_t *params,
                                          const int8_t *const *inputs,
                                          int8_t *output);

/* PAD of an int8 tensor (up to 4 dims, as ebnn_pad_ref); value is the
 * output zero point for PAD (real 0), in [-128, 127]. */
typedef struct {
  int32_t dims[4];
  int32_t before[4];
  int32_t after[4];
  int32_t value;
} ebnn_int8_pad_params_t;

ebnn_status_t ebnn_int8_pad_ref(const ebnn_int8_pad_params_t *params,
                                const int8_t *input, int8_t *output);

/* LceBconv2d with int8 output (ebnn_binary.c): the popcount, clamp and
 * float multiply-add of the float output, with LCE's one-time fusion of the
 * output scale and zero point into the multiplier and bias (double
 * arithmetic), then round half away from zero and saturate to int8.
 * bconv: multiplier/bias are the op's post_activation_* inputs, thresholds
 * NULL; SAME padding with pad_value 0 is refused (LCE: float output only). */
typedef struct {
  const ebnn_bconv2d_params_t *bconv;
  float output_scale;
  int32_t output_zero_point;
} ebnn_int8_lce_bconv2d_params_t;

ebnn_status_t ebnn_int8_lce_bconv2d_ref(
    const ebnn_int8_lce_bconv2d_params_t *params, const int32_t *input,
    int8_t *output);
/* Kernel set "mcu" (ebnn_bconv_mcu.c): the same bytes as _ref, counted with
 * the mcu popcount runs; the cases that path does not take go to _ref. */
ebnn_status_t ebnn_int8_lce_bconv2d_mcu(const ebnn_int8_lce_bconv2d_params_t *params,
                                        const int32_t *input, int8_t *output);

/* LceQuantize of int8 [n_pixels][channels] (ebnn_int8_lce.c): bit = (q <
 * zero_point), i.e. the real value scale * (q - zero_point) is negative;
 * bitpacked as ebnn_quantize_ref. */
typedef struct {
  int32_t n_pixels;
  int32_t channels;
  int32_t zero_point;
} ebnn_int8_lce_quantize_params_t;

ebnn_status_t ebnn_int8_lce_quantize_ref(
    const ebnn_int8_lce_quantize_params_t *params, const int8_t *input,
    int32_t *output);

/* The int8 row-sliced chain (ebnn_int8_fused.c): [int8 CONV_2D | int8-output
 * LceBconv2d], VALID or SAME (the bconv's SAME with pad_value 1 only) ->
 * int8 MAX_POOL_2D (VALID) -> [1x1 int8 DEPTHWISE_CONV_2D, depth multiplier
 * 1] -> LceQuantize of int8, computed one pooled row at a time from the pool
 * window's producer rows. Equal byte for byte to the unfused _ref calls.
 * Scratch: ebnn_int8_fused_scratch_bytes() bytes (for a SAME producer the
 * padded copy of the input rows one pooled row reads, then pool.filter_h
 * producer rows and two pooled rows, int8). */
typedef ebnn_status_t (*ebnn_int8_conv2d_fn)(const ebnn_int8_conv2d_params_t *params,
                                             const int8_t *input, int8_t *output);

typedef ebnn_status_t (*ebnn_int8_lce_bconv2d_fn)(const ebnn_int8_lce_bconv2d_params_t *params,
                                                  const int32_t *input, int8_t *output);

typedef struct {
  int32_t producer; /* EBNN_PRODUCER_CONV2D or EBNN_PRODUCER_BCONV2D */
  const ebnn_int8_conv2d_params_t *conv;       /* producer CONV2D, else NULL */
  ebnn_int8_conv2d_fn conv_fn;  /* the kernel set's int8 conv; NULL: _ref */
  const ebnn_int8_lce_bconv2d_params_t *bconv; /* producer BCONV2D, else NULL */
  ebnn_int8_lce_bconv2d_fn bconv_fn; /* the kernel set's int8-output bconv; NULL: _ref */
  ebnn_int8_pool2d_params_t pool;              /* in_h/in_w: the producer's output */
  const ebnn_int8_depthwise_conv2d_params_t *affine; /* or NULL */
  int32_t quantize_zero_point;                 /* the LceQuantize input's */
} ebnn_int8_fused_params_t;

size_t ebnn_int8_fused_scratch_bytes(const ebnn_int8_fused_params_t *params);

ebnn_status_t ebnn_int8_fused_ref(const ebnn_int8_fused_params_t *params,
                                  const void *input, int32_t *output,
                                  void *scratch, size_t scratch_bytes);

/* RESHAPE needs no kernel: the generated code aliases the buffer. */

#ifdef __cplusplus
}
#endif

#endif /* EDGEBNN_FIRMWARE_RUNTIME_EBNN_H_ */
