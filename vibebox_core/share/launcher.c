/*
 * vibebox share launcher: libvirtd runs it (through a per-share wrapper script written by
 * vibebox_core/share.py) as root instead of virtiofsd. It serves exactly the approved directory:
 *
 *  1. enters a private mount namespace (nothing here is seen outside virtiofsd);
 *  2. opens the approved path from "/" one component at a time with O_PATH|O_NOFOLLOW, refusing
 *     a symlink or a non-directory at any component, and compares the directory's device and
 *     inode with the approved ones;
 *  3. bind-mounts that open directory (through /proc/self/fd, so no path is looked up again)
 *     onto a staging directory on a fresh private tmpfs (over /run/vibebox-virtiofsd), masks
 *     its .vibebox/ with an empty read-only tmpfs, makes the view read-only for read-only
 *     shares;
 *  4. execs the real virtiofsd (same pid, libvirt's pid file stays right) on the staging
 *     directory, with the share guard preloaded (shim.c), capabilities it never needs dropped
 *     (mknod, setfcap, fsetid) and extended attributes off.
 *
 * Usage: launcher --real PATH --guard SO --path DIR --dev N --ino N --uid N --gid N
 *                 --label TEXT [--ro] -- VIRTIOFSD-ARGS...
 * libvirt passes `--fd=N -o source=DIR[,opts]`; DIR must be the approved path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* Our own root-only directory: a private tmpfs goes over it, so it hides nothing else. */
#define STAGING_ROOT "/run/vibebox-virtiofsd"
#define STAGING STAGING_ROOT "/vibebox-share"
#define CACHE_NAME ".vibebox"
#define MODCAPS "modcaps=-mknod:-setfcap:-fsetid"

static const char *label = "?";

static void fail(const char *what, const char *detail) {
    fprintf(stderr, "vibebox share %s: %s%s%s\n", label, what, detail ? ": " : "",
            detail ? detail : "");
    exit(1);
}

static void fail_errno(const char *what, const char *detail) {
    fprintf(stderr, "vibebox share %s: %s %s: %s\n", label, what, detail ? detail : "",
            strerror(errno));
    exit(1);
}

static unsigned long long number(const char *text, const char *what) {
    char *end = NULL;
    unsigned long long value;
    errno = 0;
    value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') fail("malformed number for", what);
    return value;
}

/* Open an absolute path without following any symlink; every component must be a directory. */
static int open_pinned(const char *path) {
    char *copy, *part, *save = NULL;
    int fd, next;
    struct stat st;
    if (path[0] != '/') fail("path is not absolute", path);
    copy = strdup(path);
    if (copy == NULL) fail("out of memory", NULL);
    fd = open("/", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) fail_errno("cannot open", "/");
    for (part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        if (strcmp(part, ".") == 0 || strcmp(part, "..") == 0) fail("path has . or ..", path);
        next = openat(fd, part, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) fail_errno("cannot open a component of", path);
        close(fd);
        fd = next;
        if (fstat(fd, &st) != 0) fail_errno("cannot stat", path);
        if (S_ISLNK(st.st_mode)) fail("a component is a symlink (approve the mount again)", path);
        if (!S_ISDIR(st.st_mode)) fail("a component is not a directory", path);
    }
    free(copy);
    return fd;
}

/* libvirt escapes commas in the source as ",,"; return the unescaped path and the rest. */
static char *split_source(const char *value, const char **rest) {
    size_t n = strlen(value), i, j = 0;
    char *out = malloc(n + 1);
    if (out == NULL) fail("out of memory", NULL);
    *rest = NULL;
    for (i = 0; i < n; i++) {
        if (value[i] == ',') {
            if (value[i + 1] == ',') {
                out[j++] = ',';
                i++;
                continue;
            }
            *rest = value + i + 1;
            break;
        }
        out[j++] = value[i];
    }
    out[j] = '\0';
    return out;
}

static void fd_path(char *buf, size_t size, int fd) {
    snprintf(buf, size, "/proc/self/fd/%d", fd);
}

int main(int argc, char **argv) {
    const char *real = NULL, *guard = NULL, *path = NULL, *uid = NULL, *gid = NULL;
    unsigned long long dev = 0, ino = 0;
    int have_dev = 0, have_ino = 0, read_only = 0, i, first = -1, fd, stage, cache, n = 0;
    int found_source = 0;
    struct stat st;
    char link[64], **args;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            first = i + 1;
            break;
        }
        if (strcmp(a, "--ro") == 0) {
            read_only = 1;
            continue;
        }
        if (i + 1 >= argc) fail("missing value for", a);
        if (strcmp(a, "--real") == 0) real = argv[++i];
        else if (strcmp(a, "--guard") == 0) guard = argv[++i];
        else if (strcmp(a, "--path") == 0) path = argv[++i];
        else if (strcmp(a, "--dev") == 0) dev = number(argv[++i], a), have_dev = 1;
        else if (strcmp(a, "--ino") == 0) ino = number(argv[++i], a), have_ino = 1;
        else if (strcmp(a, "--uid") == 0) number(uid = argv[++i], a);
        else if (strcmp(a, "--gid") == 0) number(gid = argv[++i], a);
        else if (strcmp(a, "--label") == 0) label = argv[++i];
        else fail("unknown option", a);
    }
    if (first < 0 || !real || !guard || !path || !uid || !gid || !have_dev || !have_ino)
        fail("usage: --real --guard --path --dev --ino --uid --gid --label [--ro] -- ARGS", NULL);
    if (real[0] != '/' || guard[0] != '/') fail("--real and --guard must be absolute", NULL);

    /* libvirt's source must be the approved path: this wrapper serves one share only. */
    args = calloc((size_t)(argc - first) + 6, sizeof(char *));
    if (args == NULL) fail("out of memory", NULL);
    args[n++] = (char *)real;
    for (i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "source=", 7) == 0) {
            const char *rest;
            char *src = split_source(a + 7, &rest);
            size_t size;
            if (strcmp(src, path) != 0) fail("libvirt asked for another directory", src);
            free(src);
            size = strlen("source=" STAGING) + (rest ? strlen(rest) + 2 : 1);
            args[n] = malloc(size);
            if (args[n] == NULL) fail("out of memory", NULL);
            snprintf(args[n], size, "source=%s%s%s", STAGING, rest ? "," : "", rest ? rest : "");
            n++;
            found_source = 1;
            continue;
        }
        args[n++] = argv[i];
    }
    if (!found_source) fail("no source= among virtiofsd's arguments", NULL);
    args[n++] = "-o";
    args[n++] = MODCAPS;
    args[n++] = "-o";
    args[n++] = "no_xattr";
    args[n] = NULL;

    if (unshare(CLONE_NEWNS) != 0) fail_errno("cannot enter a private mount namespace", NULL);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        fail_errno("cannot make mounts private", NULL);

    fd = open_pinned(path);
    if (fstat(fd, &st) != 0) fail_errno("cannot stat", path);
    if ((unsigned long long)st.st_dev != dev || (unsigned long long)st.st_ino != ino)
        fail("the directory is not the approved one (approve the mount again)", path);

    if (mkdir(STAGING_ROOT, 0700) != 0 && errno != EEXIST)
        fail_errno("cannot create", STAGING_ROOT);
    if (lstat(STAGING_ROOT, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0)
        fail("not a root-owned directory", STAGING_ROOT);
    if (mount("vibebox-share", STAGING_ROOT, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=0700,size=16k") != 0)
        fail_errno("cannot mount a staging tmpfs on", STAGING_ROOT);
    if (mkdir(STAGING, 0700) != 0) fail_errno("cannot create", STAGING);
    fd_path(link, sizeof(link), fd);
    if (mount(link, STAGING, NULL, MS_BIND, NULL) != 0) fail_errno("cannot bind-mount", path);
    close(fd);

    stage = open(STAGING, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (stage < 0 || fstat(stage, &st) != 0) fail_errno("cannot open", STAGING);
    if ((unsigned long long)st.st_dev != dev || (unsigned long long)st.st_ino != ino)
        fail("the staged directory is not the approved one", path);
    /* A .vibebox that is not a real directory (a symlink a repository shipped) would leave the
     * real cache unmasked or let the guest re-point it: refuse to serve rather than skip. */
    cache = openat(stage, CACHE_NAME, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (cache >= 0 && (fstat(cache, &st) != 0 || !S_ISDIR(st.st_mode)))
        fail("the share's .vibebox is not a directory (remove it)", path);
    if (cache >= 0) {
        fd_path(link, sizeof(link), cache);
        if (mount("vibebox-masked", link, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "mode=0555,size=4k") != 0)
            fail_errno("cannot mask", CACHE_NAME);
        close(cache);
    } else if (errno != ENOENT) {
        fail_errno("cannot open", CACHE_NAME);
    }
    close(stage);
    if (mount(NULL, STAGING, NULL,
              MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (read_only ? MS_RDONLY : 0),
              NULL) != 0)
        fail_errno("cannot remount", STAGING);

    if (setenv("LD_PRELOAD", guard, 1) != 0 || setenv("VIBEBOX_SHARE_UID", uid, 1) != 0 ||
        setenv("VIBEBOX_SHARE_GID", gid, 1) != 0 || setenv("VIBEBOX_SHARE", label, 1) != 0)
        fail_errno("cannot set the environment", NULL);
    execv(real, args);
    fail_errno("cannot run", real);
    return 1;
}
