"""cffi (API mode) build script for the reactor's C layer: asyncspec.impl._reactor.

The C source is impl/reactor.c (epoll on Linux; its kqueue section is only
compiled on BSD/macOS).  cffi compiles it when the package is built or
installed (`cffi_modules` in impl/build_backend.py).
"""

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

ffibuilder = FFI()
ffibuilder.cdef(
    """
    struct asr_event {
        uint64_t token;
        uint32_t events;
    };

    /* Event and registration bits (epoll's values on every backend). */
    #define ASR_IN ...
    #define ASR_PRI ...
    #define ASR_OUT ...
    #define ASR_ERR ...
    #define ASR_HUP ...
    #define ASR_RDHUP ...
    #define ASR_WRHUP ...
    #define ASR_ONESHOT ...
    #define ASR_ET ...

    /* All return >= 0 on success and -errno on failure. */
    int asr_poll_create(void);
    int asr_ctl_add(int pfd, int fd, uint32_t events, uint64_t token);
    int asr_ctl_mod(int pfd, int fd, uint32_t events, uint64_t token);
    int asr_ctl_del(int pfd, int fd);
    int asr_poll_wait(int pfd, struct asr_event *out, int cap, int timeout_ms);

    int asr_eventfd_create(unsigned int initval);
    int asr_eventfd_write(int fd, uint64_t value);
    int asr_eventfd_read(int fd, uint64_t *value);

    int asr_waker_create(int pfd, uint64_t token);
    int asr_waker_wake(int wfd);
    int asr_waker_close(int wfd);

    int asr_dup(int fd);
    int asr_close(int fd);
    """
)
with open(os.path.join(HERE, "reactor.c")) as f:
    ffibuilder.set_source("asyncspec.impl._reactor", f.read())

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
