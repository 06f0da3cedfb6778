/* GPU discovery as llama.cpp does it: ggml's own registry loads a backend
 * library (argv[1], the real libggml-cuda.so) and lists its devices. The few
 * ggml functions are declared here (include/ggml-backend.h of ggml), so that
 * no ggml header is needed; link with libggml.so and libggml-base.so. */
#include <stddef.h>
#include <stdio.h>
#include <time.h>

typedef struct ggml_backend_reg *ggml_backend_reg_t;
typedef struct ggml_backend_device *ggml_backend_dev_t;

ggml_backend_reg_t ggml_backend_load(const char *path);
size_t ggml_backend_dev_count(void);
ggml_backend_dev_t ggml_backend_dev_get(size_t index);
const char *ggml_backend_dev_name(ggml_backend_dev_t device);
const char *ggml_backend_dev_description(ggml_backend_dev_t device);
void ggml_backend_dev_memory(ggml_backend_dev_t device, size_t *free, size_t *total);

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s BACKEND_LIBRARY\n", argv[0]);
        return 2;
    }
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    ggml_backend_reg_t reg = ggml_backend_load(argv[1]);
    printf("load %s\n", reg ? "ok" : "failed");
    size_t count = ggml_backend_dev_count();
    printf("devices %zu\n", count);
    for (size_t i = 0; i < count; i++) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        size_t free_bytes = 0, total_bytes = 0;
        ggml_backend_dev_memory(dev, &free_bytes, &total_bytes);
        printf("device %zu name=%s description=\"%s\" free=%zu total=%zu total_mib=%zu\n", i, ggml_backend_dev_name(dev),
               ggml_backend_dev_description(dev), free_bytes, total_bytes, total_bytes >> 20);
    }
    /* From loading the backend to its last device described (on stderr:
     * stdout is the same whatever the speed). */
    clock_gettime(CLOCK_MONOTONIC, &end);
    fprintf(stderr, "discovery took %.1f ms\n",
            (double)(end.tv_sec - start.tv_sec) * 1e3 + (double)(end.tv_nsec - start.tv_nsec) / 1e6);
    fflush(stdout);
    return reg ? 0 : 1;
}
