/* Loads a shared library the way ggml's backend registry does
 * (dlopen(path, RTLD_NOW | RTLD_LOCAL)) and says what happened:
 *
 *   loaded: PATH             then one `object: FILE` line per object now
 *                             loaded (dl_iterate_phdr), exit 0
 *   dlopen failed: DLERROR   exit 1
 *
 * Usage: load_library PATH
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>

static int print_object(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    (void)data;
    if (info->dlpi_name && info->dlpi_name[0])
        printf("object: %s\n", info->dlpi_name);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH\n", argv[0]);
        return 2;
    }
    void *handle = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *err = dlerror();
        printf("dlopen failed: %s\n", err ? err : "(no dlerror)");
        return 1;
    }
    printf("loaded: %s\n", argv[1]);
    dl_iterate_phdr(print_object, NULL);
    fflush(stdout);
    return 0;
}
