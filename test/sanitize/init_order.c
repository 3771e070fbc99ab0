/*
 * Preloaded after the sanitizer runtime (test/run --sanitize) so that it can
 * start inside an uninstrumented PostgreSQL at all.
 *
 * A preloaded libasan initialises itself on the first malloc, and the first
 * comes from libgpg-error's constructor (libsystemd -> libgcrypt), inside
 * bindtextdomain(), which holds glibc's gettext lock. During that start-up the
 * runtime looks up swift_demangle with dlsym() and clears the miss with
 * dlerror(), which translates its message through gettext: the same thread
 * takes the lock again, glibc's rwlock is left unbalanced, and the server hangs
 * in its own bindtextdomain() (postgres -V never returns). With the symbol
 * defined here the lookup succeeds and dlerror() has nothing to translate.
 *
 * It is never called for our code (it only demangles Swift names) and changes
 * nothing the sanitizers check.
 */
#include <stddef.h>
#include <stdint.h>

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
