/*
 * vibebox share guard: an LD_PRELOAD library for Debian 12's virtiofsd (vibebox_core/share.py).
 *
 * virtiofsd runs as root and trusts the guest: it switches each worker thread's effective
 * uid/gid to the guest caller's with syscall(SYS_setresuid/SYS_setresgid, -1, id, -1), and
 * applies chmod/chown/mknod requests as root. Guest root could so leave setuid binaries, device
 * nodes and files of any owner on the host. This library sits between virtiofsd and libc:
 *
 *   - every effective uid/gid switch away from root lands on the share owner (the host user),
 *     so whatever guest uid asks, new files belong to the host user; switching back to root
 *     (virtiofsd restoring its own identity) stays allowed;
 *   - S_ISUID and S_ISGID are removed from every mode (open, creat, mkdir, mknod, mkfifo, chmod);
 *   - character and block devices, and rename whiteouts (a 0:0 character device), are EPERM;
 *   - chown to any uid/gid other than the share owner's is EPERM;
 *   - security.* and trusted.* extended attributes are EPERM (file capabilities live there);
 *   - any other real/saved id change is EPERM.
 *
 * The same rules apply whether a call goes through the libc function or through syscall().
 * Configuration comes from the environment the vibebox launcher sets right before exec:
 * VIBEBOX_SHARE_UID and VIBEBOX_SHARE_GID (decimal). Without them the process exits (fail
 * closed). After start-up virtiofsd runs under a seccomp filter, so the wrappers only do
 * arithmetic plus the system call they wrap (and geteuid/getegid, which virtiofsd itself uses).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef RENAME_WHITEOUT
#define RENAME_WHITEOUT (1 << 2)
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

#define SHIM_EXPORT __attribute__((visibility("default")))
#define NO_ID ((unsigned long)-1)
#define NO_ID32 ((unsigned int)-1)

static uid_t share_uid;
static gid_t share_gid;
static uid_t own_uid;
static gid_t own_gid;

static long (*next_syscall)(long, ...);
static int (*next_open)(const char *, int, ...);
static int (*next_open64)(const char *, int, ...);
static int (*next_openat)(int, const char *, int, ...);
static int (*next_openat64)(int, const char *, int, ...);
static int (*next_creat)(const char *, mode_t);
static int (*next_creat64)(const char *, mode_t);
static int (*next_mkdir)(const char *, mode_t);
static int (*next_mkdirat)(int, const char *, mode_t);
static int (*next_mknod)(const char *, mode_t, dev_t);
static int (*next_mknodat)(int, const char *, mode_t, dev_t);
static int (*next_mkfifo)(const char *, mode_t);
static int (*next_mkfifoat)(int, const char *, mode_t);
static int (*next_chmod)(const char *, mode_t);
static int (*next_fchmod)(int, mode_t);
static int (*next_fchmodat)(int, const char *, mode_t, int);
static int (*next_chown)(const char *, uid_t, gid_t);
static int (*next_lchown)(const char *, uid_t, gid_t);
static int (*next_fchown)(int, uid_t, gid_t);
static int (*next_fchownat)(int, const char *, uid_t, gid_t, int);
static int (*next_setxattr)(const char *, const char *, const void *, size_t, int);
static int (*next_lsetxattr)(const char *, const char *, const void *, size_t, int);
static int (*next_fsetxattr)(int, const char *, const void *, size_t, int);
static int (*next_renameat2)(int, const char *, int, const char *, unsigned int);

static void die(const char *what) {
    fprintf(stderr, "vibebox share guard: %s; refusing to serve the share\n", what);
    _exit(97);
}

static void *need(const char *name) {
    void *fn = dlsym(RTLD_NEXT, name);
    if (fn == NULL) {
        fprintf(stderr, "vibebox share guard: libc has no %s\n", name);
        _exit(97);
    }
    return fn;
}

static unsigned long parse_id(const char *name) {
    const char *text = getenv(name);
    char *end = NULL;
    unsigned long value;
    if (text == NULL || *text == '\0') die("the share owner is not set (VIBEBOX_SHARE_UID/GID)");
    errno = 0;
    value = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || value >= NO_ID32) die("the share owner is malformed");
    return value;
}

static volatile int ready;

/*
 * Run from the constructor, and from any wrapper called before it (another library's
 * constructor may open files first): idempotent, and done before virtiofsd's seccomp filter.
 */
static void shim_init(void) {
    if (ready) return;
    share_uid = (uid_t)parse_id("VIBEBOX_SHARE_UID");
    share_gid = (gid_t)parse_id("VIBEBOX_SHARE_GID");
    own_uid = getuid();
    own_gid = getgid();
    next_syscall = need("syscall");
    next_open = need("open");
    next_open64 = need("open64");
    next_openat = need("openat");
    next_openat64 = need("openat64");
    next_creat = need("creat");
    next_creat64 = need("creat64");
    next_mkdir = need("mkdir");
    next_mkdirat = need("mkdirat");
    next_mknod = need("mknod");
    next_mknodat = need("mknodat");
    next_mkfifo = need("mkfifo");
    next_mkfifoat = need("mkfifoat");
    next_chmod = need("chmod");
    next_fchmod = need("fchmod");
    next_fchmodat = need("fchmodat");
    next_chown = need("chown");
    next_lchown = need("lchown");
    next_fchown = need("fchown");
    next_fchownat = need("fchownat");
    next_setxattr = need("setxattr");
    next_lsetxattr = need("lsetxattr");
    next_fsetxattr = need("fsetxattr");
    next_renameat2 = need("renameat2");
    ready = 1;
}

__attribute__((constructor)) static void shim_constructor(void) { shim_init(); }

#define READY()                                                                                  \
    do {                                                                                          \
        if (!ready) shim_init();                                                                  \
    } while (0)

/* ------------------------------------------------------------------ the rules */

static mode_t clean(mode_t mode) { return mode & ~(mode_t)(S_ISUID | S_ISGID); }

static int refuse(void) {
    errno = EPERM;
    return -1;
}

static int is_device(mode_t mode) { return S_ISCHR(mode) || S_ISBLK(mode); }

static int owner_ok(unsigned long uid, unsigned long gid) {
    unsigned int u = (unsigned int)uid, g = (unsigned int)gid;
    return (u == NO_ID32 || u == share_uid) && (g == NO_ID32 || g == share_gid);
}

static int xattr_ok(const char *name) {
    if (name == NULL) return 1;
    return strncmp(name, "security.", 9) != 0 && strncmp(name, "trusted.", 8) != 0;
}

/*
 * The effective id a thread may take: leaving its own (root) identity always lands on the
 * share owner; once switched it may only go back to its own identity (virtiofsd restoring).
 */
static unsigned long euid_for(unsigned long want) {
    if (geteuid() == own_uid) return share_uid;
    return (unsigned int)want == own_uid ? own_uid : share_uid;
}

static unsigned long egid_for(unsigned long want) {
    if (getegid() == own_gid) return share_gid;
    return (unsigned int)want == own_gid ? own_gid : share_gid;
}

static int needs_mode(int flags) { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE; }

/* ------------------------------------------------------------------ syscall() */

struct shim_open_how {
    unsigned long long flags, mode, resolve;
};

SHIM_EXPORT long syscall(long number, ...) {
    READY();
    va_list ap;
    unsigned long a[6];
    int i;
    va_start(ap, number);
    for (i = 0; i < 6; i++) a[i] = va_arg(ap, unsigned long);
    va_end(ap);
    switch (number) {
    case SYS_setresuid:
        if ((unsigned int)a[0] != NO_ID32 || (unsigned int)a[2] != NO_ID32) return refuse();
        if ((unsigned int)a[1] == NO_ID32) break;
        a[1] = euid_for(a[1]);
        break;
    case SYS_setresgid:
        if ((unsigned int)a[0] != NO_ID32 || (unsigned int)a[2] != NO_ID32) return refuse();
        if ((unsigned int)a[1] == NO_ID32) break;
        a[1] = egid_for(a[1]);
        break;
    case SYS_setuid:
    case SYS_setgid:
    case SYS_setreuid:
    case SYS_setregid:
    case SYS_setfsuid:
    case SYS_setfsgid:
        return refuse();
    case SYS_renameat2:
        if (a[4] & RENAME_WHITEOUT) return refuse();
        break;
    case SYS_mknod:
        if (is_device((mode_t)a[1])) return refuse();
        a[1] = clean((mode_t)a[1]);
        break;
    case SYS_mknodat:
        if (is_device((mode_t)a[2])) return refuse();
        a[2] = clean((mode_t)a[2]);
        break;
    case SYS_open:
        a[2] = clean((mode_t)a[2]);
        break;
    case SYS_creat:
    case SYS_mkdir:
    case SYS_chmod:
    case SYS_fchmod:
        a[1] = clean((mode_t)a[1]);
        break;
    case SYS_openat:
    case SYS_mkdirat:
    case SYS_fchmodat:
    case SYS_fchmodat2:
        a[2] = clean((mode_t)a[2]);
        break;
    case SYS_openat2: {
        struct shim_open_how how;
        if (a[2] == 0 || a[3] < sizeof(how)) return refuse();
        if (a[3] != sizeof(how)) return refuse(); /* unknown extensions: refuse, do not guess */
        memcpy(&how, (const void *)a[2], sizeof(how));
        how.mode = clean((mode_t)how.mode);
        return next_syscall(number, a[0], a[1], (unsigned long)&how, a[3], a[4], a[5]);
    }
    case SYS_chown:
    case SYS_lchown:
    case SYS_fchown:
        if (!owner_ok(a[1], a[2])) return refuse();
        break;
    case SYS_fchownat:
        if (!owner_ok(a[2], a[3])) return refuse();
        break;
    case SYS_setxattr:
    case SYS_lsetxattr:
    case SYS_fsetxattr:
        if (!xattr_ok((const char *)a[1])) return refuse();
        break;
    default:
        break;
    }
    return next_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* ------------------------------------------------------------------ id functions */

SHIM_EXPORT int setresuid(uid_t r, uid_t e, uid_t s) {
    READY();
    return (int)syscall(SYS_setresuid, (unsigned long)r, (unsigned long)e, (unsigned long)s);
}

SHIM_EXPORT int setresgid(gid_t r, gid_t e, gid_t s) {
    READY();
    return (int)syscall(SYS_setresgid, (unsigned long)r, (unsigned long)e, (unsigned long)s);
}

SHIM_EXPORT int setuid(uid_t id) {
    READY();
    (void)id;
    return refuse();
}

SHIM_EXPORT int setgid(gid_t id) {
    READY();
    (void)id;
    return refuse();
}

SHIM_EXPORT int setreuid(uid_t r, uid_t e) {
    READY();
    (void)r;
    (void)e;
    return refuse();
}

SHIM_EXPORT int setregid(gid_t r, gid_t e) {
    READY();
    (void)r;
    (void)e;
    return refuse();
}

SHIM_EXPORT int seteuid(uid_t id) {
    READY();
    return (int)syscall(SYS_setresuid, NO_ID, (unsigned long)id, NO_ID);
}

SHIM_EXPORT int setegid(gid_t id) {
    READY();
    return (int)syscall(SYS_setresgid, NO_ID, (unsigned long)id, NO_ID);
}

/* ------------------------------------------------------------------ modes */

#define MODE_ARG(flags, mode)                                                                     \
    do {                                                                                          \
        if (needs_mode(flags)) {                                                                  \
            va_list ap;                                                                           \
            va_start(ap, flags);                                                                  \
            mode = clean((mode_t)va_arg(ap, int));                                                \
            va_end(ap);                                                                           \
        }                                                                                         \
    } while (0)

SHIM_EXPORT int open(const char *path, int flags, ...) {
    READY();
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return next_open(path, flags, mode);
}

SHIM_EXPORT int open64(const char *path, int flags, ...) {
    READY();
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return next_open64(path, flags, mode);
}

SHIM_EXPORT int openat(int dirfd, const char *path, int flags, ...) {
    READY();
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return next_openat(dirfd, path, flags, mode);
}

SHIM_EXPORT int openat64(int dirfd, const char *path, int flags, ...) {
    READY();
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return next_openat64(dirfd, path, flags, mode);
}

SHIM_EXPORT int creat(const char *path, mode_t mode) {
    READY();
    return next_creat(path, clean(mode));
}

SHIM_EXPORT int creat64(const char *path, mode_t mode) {
    READY();
    return next_creat64(path, clean(mode));
}

SHIM_EXPORT int mkdir(const char *path, mode_t mode) {
    READY();
    return next_mkdir(path, clean(mode));
}

SHIM_EXPORT int mkdirat(int dirfd, const char *path, mode_t mode) {
    READY();
    return next_mkdirat(dirfd, path, clean(mode));
}

SHIM_EXPORT int mknod(const char *path, mode_t mode, dev_t dev) {
    READY();
    if (is_device(mode)) return refuse();
    return next_mknod(path, clean(mode), dev);
}

SHIM_EXPORT int mknodat(int dirfd, const char *path, mode_t mode, dev_t dev) {
    READY();
    if (is_device(mode)) return refuse();
    return next_mknodat(dirfd, path, clean(mode), dev);
}

SHIM_EXPORT int mkfifo(const char *path, mode_t mode) {
    READY();
    return next_mkfifo(path, clean(mode));
}

SHIM_EXPORT int mkfifoat(int dirfd, const char *path, mode_t mode) {
    READY();
    return next_mkfifoat(dirfd, path, clean(mode));
}

SHIM_EXPORT int chmod(const char *path, mode_t mode) {
    READY();
    return next_chmod(path, clean(mode));
}

SHIM_EXPORT int fchmod(int fd, mode_t mode) {
    READY();
    return next_fchmod(fd, clean(mode));
}

SHIM_EXPORT int fchmodat(int dirfd, const char *path, mode_t mode, int flags) {
    READY();
    return next_fchmodat(dirfd, path, clean(mode), flags);
}

/* ------------------------------------------------------------------ owners */

SHIM_EXPORT int chown(const char *path, uid_t uid, gid_t gid) {
    READY();
    if (!owner_ok(uid, gid)) return refuse();
    return next_chown(path, uid, gid);
}

SHIM_EXPORT int lchown(const char *path, uid_t uid, gid_t gid) {
    READY();
    if (!owner_ok(uid, gid)) return refuse();
    return next_lchown(path, uid, gid);
}

SHIM_EXPORT int fchown(int fd, uid_t uid, gid_t gid) {
    READY();
    if (!owner_ok(uid, gid)) return refuse();
    return next_fchown(fd, uid, gid);
}

SHIM_EXPORT int fchownat(int dirfd, const char *path, uid_t uid, gid_t gid, int flags) {
    READY();
    if (!owner_ok(uid, gid)) return refuse();
    return next_fchownat(dirfd, path, uid, gid, flags);
}

/* ------------------------------------------------------------------ xattrs, renames */

SHIM_EXPORT int setxattr(const char *p, const char *n, const void *v, size_t s, int f) {
    READY();
    if (!xattr_ok(n)) return refuse();
    return next_setxattr(p, n, v, s, f);
}

SHIM_EXPORT int lsetxattr(const char *p, const char *n, const void *v, size_t s, int f) {
    READY();
    if (!xattr_ok(n)) return refuse();
    return next_lsetxattr(p, n, v, s, f);
}

SHIM_EXPORT int fsetxattr(int fd, const char *n, const void *v, size_t s, int f) {
    READY();
    if (!xattr_ok(n)) return refuse();
    return next_fsetxattr(fd, n, v, s, f);
}

SHIM_EXPORT int renameat2(int od, const char *op, int nd, const char *np, unsigned int flags) {
    READY();
    if (flags & RENAME_WHITEOUT) return refuse();
    return next_renameat2(od, op, nd, np, flags);
}
