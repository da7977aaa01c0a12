/*
 * The `edge` model's layers through CMSIS-NN's s8 kernels (arm_convolve_wrapper_s8,
 * arm_max_pool_s8, arm_fully_connected_per_channel_s8) on an emulated Cortex-M, with the
 * blob's weights and requantization (model.h, from cmsis_model.rs), timed as the Rust
 * firmware times `Plan::classify`: SysTick on the core clock under QEMU's -icount shift=0,
 * calibrated against a loop of known length.
 *
 *   cmsis IMAGES COUNT
 *
 * prints "calibration INSTRUCTIONS TICKS", then per image "logits INDEX L0 .. L9
 * INSTRUCTIONS" (the s8 logits; the class is their argmax), then "layer INDEX
 * INSTRUCTIONS" averaged over the images. benches/cortex-m/run.sh builds and runs it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arm_nnfunctions.h"

enum kind { LAYER_CONV, LAYER_POOL, LAYER_LINEAR };

struct layer {
    enum kind kind;
    int32_t in_h, in_w, in_c, out_c, kernel, padding;
    const int8_t *weights;
    const int32_t *bias, *mult, *shift;
};

#include "model.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

/* Two activation buffers (the largest activation is 28 x 28 x 16) and CMSIS-NN's
   scratch. */
static int8_t activations[2][28 * 28 * 96];
static int16_t scratch[8192];

static uint32_t now(void) {
    return SYST_CVR;
}

/* SysTick counts down, 24 bits. */
static uint32_t since(uint32_t start) {
    return (start - SYST_CVR) & 0xFFFFFFu;
}

static uint64_t counted, measured;

static uint64_t instructions(uint64_t ticks) {
    return (ticks * counted + measured / 2) / measured;
}

static void calibrate(void) {
    uint32_t turns = 2000000;
    uint32_t start = now();
    __asm volatile("1: subs %0, #1\n bne 1b" : "+r"(turns) : : "cc");
    measured = since(start);
    counted = 2 * 2000000ull;
    printf("calibration %lu %lu\n", (unsigned long)counted, (unsigned long)measured);
}

static uint64_t layer_ticks[LAYER_COUNT];

/* Runs the model on `input` (28 x 28 s8); the logits end in `logits`. */
static void run(const int8_t *input, int8_t logits[10]) {
    const int8_t *from = input;
    int which = 0;
    for (int i = 0; i < LAYER_COUNT; i++) {
        const struct layer *l = &layers[i];
        int8_t *to = activations[which];
        uint32_t start = now();
        if (l->kind == LAYER_CONV) {
            cmsis_nn_conv_params conv = {
                .input_offset = 128,
                .output_offset = -128,
                .stride = {1, 1},
                .padding = {l->padding, l->padding},
                .dilation = {1, 1},
                .activation = {-128, 127},
            };
            cmsis_nn_per_channel_quant_params quant = {(int32_t *)l->mult, (int32_t *)l->shift};
            int32_t out_side = l->in_h + 2 * l->padding - l->kernel + 1;
            cmsis_nn_dims in = {1, l->in_h, l->in_w, l->in_c};
            cmsis_nn_dims filter = {l->out_c, l->kernel, l->kernel, l->in_c};
            cmsis_nn_dims bias = {1, 1, 1, l->out_c};
            cmsis_nn_dims out = {1, out_side, out_side, l->out_c};
            cmsis_nn_context ctx = {scratch, sizeof scratch};
            if (arm_convolve_wrapper_s8_get_buffer_size(&conv, &in, &filter, &out) > (int32_t)sizeof scratch) {
                printf("error scratch too small for layer %d\n", i);
                exit(1);
            }
            if (arm_convolve_wrapper_s8(&ctx, &conv, &quant, &in, from, &filter, l->weights, &bias, l->bias,
                                        &out, to) != ARM_CMSIS_NN_SUCCESS) {
                printf("error layer %d\n", i);
                exit(1);
            }
        } else if (l->kind == LAYER_POOL) {
            cmsis_nn_pool_params pool = {
                .stride = {l->kernel, l->kernel}, .padding = {0, 0}, .activation = {-128, 127}};
            cmsis_nn_dims in = {1, l->in_h, l->in_w, l->in_c};
            cmsis_nn_dims filter = {1, l->kernel, l->kernel, 1};
            cmsis_nn_dims out = {1, l->in_h / l->kernel, l->in_w / l->kernel, l->in_c};
            cmsis_nn_context ctx = {NULL, 0};
            if (arm_max_pool_s8(&ctx, &pool, &in, from, &filter, &out, to) != ARM_CMSIS_NN_SUCCESS) {
                printf("error layer %d\n", i);
                exit(1);
            }
        } else {
            /* The logits: s8 outputs (CMSIS-NN's fully connected layers end in 8 bits),
               offset 0, the blob's per-channel scales. */
            cmsis_nn_fc_params fc = {
                .input_offset = 128, .filter_offset = 0, .output_offset = 0, .activation = {-128, 127}};
            cmsis_nn_per_channel_quant_params quant = {(int32_t *)l->mult, (int32_t *)l->shift};
            cmsis_nn_dims in = {1, 1, 1, l->in_c};
            cmsis_nn_dims filter = {l->in_c, 1, 1, l->out_c};
            cmsis_nn_dims bias = {1, 1, 1, l->out_c};
            cmsis_nn_dims out = {1, 1, 1, l->out_c};
            cmsis_nn_context ctx = {scratch, sizeof scratch};
            if (arm_fully_connected_per_channel_s8(&ctx, &fc, &quant, &in, from, &filter, l->weights, &bias,
                                                   l->bias, &out, logits) != ARM_CMSIS_NN_SUCCESS) {
                printf("error layer %d\n", i);
                exit(1);
            }
        }
        layer_ticks[i] += since(start);
        from = to;
        which ^= 1;
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        printf("usage: cmsis IMAGES COUNT\n");
        return 2;
    }
    FILE *images = fopen(argv[1], "rb");
    if (images == NULL) {
        printf("error cannot open %s\n", argv[1]);
        return 1;
    }
    int count = atoi(argv[2]);
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5; /* enabled, core clock, no interrupt */
    calibrate();
    printf("macs %lu\n", (unsigned long)MACS);
    static uint8_t pixels[784];
    static int8_t input[784];
    for (int n = 0; n < count; n++) {
        if (fread(pixels, 1, sizeof pixels, images) != sizeof pixels) {
            printf("error the images file ends early\n");
            return 1;
        }
        for (int i = 0; i < 784; i++) {
            input[i] = (int8_t)(pixels[i] - 128);
        }
        int8_t logits[10];
        uint32_t start = now();
        run(input, logits);
        uint32_t ticks = since(start);
        printf("logits %d", n);
        for (int c = 0; c < 10; c++) {
            printf(" %d", logits[c]);
        }
        printf(" %lu\n", (unsigned long)instructions(ticks));
    }
    for (int i = 0; i < LAYER_COUNT; i++) {
        printf("layer %d %lu\n", i, (unsigned long)instructions(layer_ticks[i] / (uint64_t)count));
    }
    printf("done %d\n", count);
    return 0;
}
