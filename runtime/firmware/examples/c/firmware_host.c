/*
 * A host stand-in for a board running runtime/firmware/examples/firmware.rs: it provides the
 * board hooks the Rust firmware calls (camera_frame feeds the images of images.h,
 * show_class prints each class) and calls firmware_main. Prints one class index per line,
 * then "frames N".
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "images.h"

int32_t firmware_main(void);

static size_t next_frame = 0;

bool camera_frame(uint8_t *pixels) {
    if (next_frame == IMAGE_COUNT) {
        return false;
    }
    memcpy(pixels, images[next_frame++], sizeof images[0]);
    return true;
}

void show_class(uint32_t class_index) { printf("%u\n", (unsigned)class_index); }

int main(void) {
    int32_t frames = firmware_main();
    printf("frames %d\n", (int)frames);
    return frames == (int32_t)IMAGE_COUNT ? 0 : 1;
}
