/*
 * Preloaded after gcc's sanitizer runtimes into every server of test/run
 * --sanitize, for two quirks of preloading them into an uninstrumented
 * PostgreSQL. It changes nothing the sanitizers check.
 *
 * 1. Start-up. A preloaded libasan initialises itself on the first malloc, and
 *    the first comes from libgpg-error's constructor (libsystemd -> libgcrypt),
 *    inside bindtextdomain(), which holds glibc's gettext lock. During that
 *    start-up the runtime looks up swift_demangle with dlsym() and clears the
 *    miss with dlerror(), which translates its message through gettext: the
 *    same thread takes the lock again, glibc's rwlock is left unbalanced, and
 *    the server hangs in its own bindtextdomain() (postgres -V never returns).
 *    With the symbol defined here the lookup succeeds and dlerror() has nothing
 *    to translate. It is only ever asked to demangle Swift names.
 *
 * 2. UBSan's reports. With ASan in the process, gcc 12's libubsan parses
 *    UBSAN_OPTIONS' log_path but keeps writing to stderr (the server log, where
 *    a crash of a background worker goes unnoticed). This constructor hands it
 *    that log_path, so that its reports are files like ASan's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

char *swift_demangle(const char *mangled, size_t length, char *out, size_t *out_length,
                     uint32_t flags);

char *swift_demangle(const char *mangled, size_t length, char *out, size_t *out_length,
                     uint32_t flags) {
    (void)mangled;
    (void)length;
    (void)out;
    (void)out_length;
    (void)flags;
    return NULL;
}

__attribute__((constructor)) static void ubsan_log_path(void) {
    const char *options = getenv("UBSAN_OPTIONS");
    const char *start = options ? strstr(options, "log_path=") : NULL;
    void *ubsan = dlopen("libubsan.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (start == NULL || ubsan == NULL) return;
    start += strlen("log_path=");
    char path[4096];
    const size_t length = strcspn(start, ":");
    if (length == 0 || length >= sizeof path) return;
    memcpy(path, start, length);
    path[length] = '\0';
    void (*set_report_path)(const char *) =
        (void (*)(const char *))dlsym(ubsan, "__sanitizer_set_report_path");
    if (set_report_path != NULL) set_report_path(path);
}
