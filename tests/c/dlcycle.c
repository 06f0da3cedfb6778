/* dlopen, call, dlclose the shim (argv[1]) argv[2] times, under a limit of
 * 64 descriptors, opening a file of its own each cycle: the shim must not
 * leak a descriptor (or anything else) per cycle. Prints the descriptors
 * open before and after. */
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static int open_descriptors(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d) return -1;
    while (readdir(d)) n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory's own descriptor */
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int cycles = atoi(argv[2]);
    struct rlimit limit = {64, 64};
    setrlimit(RLIMIT_NOFILE, &limit);
    int before = open_descriptors();
    for (int i = 0; i < cycles; i++) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0) {
            printf("the host's own open failed at cycle %d\n", i);
            return 1;
        }
        close(fd);
        void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            printf("dlopen failed at cycle %d: %s\n", i, dlerror());
            return 1;
        }
        int (*get)(int *) = (int (*)(int *))dlsym(h, "cudaRuntimeGetVersion");
        int v = -1;
        int r = get ? get(&v) : -1;
        if (i == 0) printf("first cycle -> %d, version %d\n", r, v);
        dlclose(h);
    }
    printf("cycles %d, descriptors before %d after %d\n", cycles, before, open_descriptors());
    return 0;
}
