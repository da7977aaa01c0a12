/*
 * A plain C program using the int8 engine through include/fmnist.h: the shipped `edge`
 * blob and a few real test images are compiled in as byte arrays (edge_q8.h and
 * images.h, generated as `xxd -i` would; tests/capi.rs writes them), the model
 * lives in a static buffer, nothing is allocated.
 *
 * Build (README, "Edge footprint"):
 *   cc -std=c99 -Wall -Wextra -Werror -I runtime/include -I <dir with edge_q8.h, images.h> \
 *      runtime/firmware/examples/c/classify.c runtime/firmware/target/release/libfmnist.a \
 *      -o classify
 * or for a Cortex-M4F on QEMU's mps2-an386 board (newlib's semihosting C library; the
 * start-up code and linker script of runtime/firmware/cortex-m/c; tests/capi.rs runs it):
 *   arm-none-eabi-gcc -std=c99 -O2 -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 \
 *      -mfloat-abi=hard --specs=rdimon.specs -T runtime/firmware/cortex-m/c/mps2.ld \
 *      -I runtime/include -I <dir> runtime/firmware/examples/c/classify.c \
 *      runtime/firmware/cortex-m/c/startup.c \
 *      runtime/firmware/target/thumbv7em-none-eabihf/release/libfmnist.a -o classify.elf
 *
 * Prints one line per image: index, class index, class name, probability (4 decimals),
 * true label. Exits 0 when every call succeeded, 1 otherwise.
 */
#include <stdio.h>

#include "fmnist.h"

#include "edge_q8.h"
#include "images.h"

/* Model handle + activation arena; fmnist_memory_size says how much of it is used. */
static uint8_t memory[32 * 1024];

int main(void) {
    size_t needed = 0;
    FmnistStatus status = fmnist_memory_size(edge_q8, edge_q8_len, &needed);
    if (status != FMNIST_STATUS_OK) {
        fprintf(stderr, "edge blob: %s\n", fmnist_status_message(status));
        return 1;
    }
    if (needed > sizeof memory) {
        fprintf(stderr, "the model needs %lu bytes, this program has %lu\n", (unsigned long)needed,
                (unsigned long)sizeof memory);
        return 1;
    }

    FmnistModel *model = NULL;
    status = fmnist_load(edge_q8, edge_q8_len, memory, sizeof memory, &model);
    if (status != FMNIST_STATUS_OK) {
        fprintf(stderr, "edge blob: %s\n", fmnist_status_message(status));
        return 1;
    }
    printf("memory %lu arena %lu\n", (unsigned long)needed, (unsigned long)fmnist_arena_size(model));

    for (size_t i = 0; i < IMAGE_COUNT; i++) {
        FmnistPrediction top[3];
        status = fmnist_classify_top(model, images[i], FMNIST_IMAGE_PIXELS, top, 3);
        if (status != FMNIST_STATUS_OK) {
            fprintf(stderr, "image %lu: %s\n", (unsigned long)i, fmnist_status_message(status));
            return 1;
        }
        printf("%lu %u %s %.4f %u\n", (unsigned long)i, (unsigned)top[0].class_index,
               fmnist_class_name(top[0].class_index), (double)top[0].probability,
               (unsigned)labels[i]);
    }

    /* Errors come back as codes with messages, never as crashes. */
    FmnistPrediction best;
    status = fmnist_classify(model, images[0], FMNIST_IMAGE_PIXELS - 1, &best);
    printf("error %d %s\n", (int)status, fmnist_status_message(status));
    status = fmnist_load(edge_q8, edge_q8_len / 2, memory, sizeof memory, &model);
    printf("error %d %s\n", (int)status, fmnist_status_message(status));
    return 0;
}
