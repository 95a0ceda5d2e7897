"""cffi (API mode) build script for the tasks' C layer: asyncspec.impl._task.

The C source is impl/task.c (task headers, the waker vtable, the run queue,
AtomicWaker; C11 atomics and pthreads, nothing architecture-specific).  cffi
compiles it when the package is built or installed (`cffi_modules` in
impl/build_backend.py).

`build_variant(name, defines, tmpdir)` compiles the same file with extra
preprocessor definitions (the deliberately broken AST_BROKEN_* builds and
AST_UNCHECKED, see the head of task.c) into a separate module in a directory
of the caller's, without touching the installed one;
`asyncspec.impl.task.api` puts the task API over such a module.
"""

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

CDEF = """
    #define AST_MAGIC_LIVE ...
    #define AST_MAGIC_DEAD ...
    #define AST_POISON ...

    #define AST_RUNNING ...
    #define AST_NOTIFIED ...
    #define AST_COMPLETE ...
    #define AST_CANCELLED ...
    #define AST_REF_SHIFT ...
    #define AST_REF_ONE ...
    #define AST_FLAGS_MASK ...

    #define AST_CALL_CLONE ...
    #define AST_CALL_WAKE ...
    #define AST_CALL_WAKE_BY_REF ...
    #define AST_CALL_DROP ...

    #define AST_HOLD_OWNED ...
    #define AST_HOLD_JOIN ...

    #define AST_OP_CLONE ...
    #define AST_OP_WAKE ...
    #define AST_OP_WAKE_BY_REF ...
    #define AST_OP_DROP ...
    #define AST_OP_NEW_WAKER ...
    #define AST_OP_POLL ...
    #define AST_OP_JOIN_DROP ...
    #define AST_OP_CANCEL ...
    #define AST_OP_SPAWN ...
    #define AST_OP_AW_REGISTER ...
    #define AST_OP_AW_TAKE ...
    #define AST_OP_READ ...

    #define AST_ERR_FREED ...
    #define AST_ERR_NOT_TASK ...
    #define AST_ERR_REFCOUNT ...
    #define AST_ERR_STATE ...
    #define AST_ERR_NOMEM ...
    #define AST_ERR_INVAL ...
    #define AST_ERR_CLOSED ...
    #define AST_ERR_UNKNOWN ...

    #define AST_STATUS_UNKNOWN ...
    #define AST_STATUS_LIVE ...
    #define AST_STATUS_QUARANTINED ...
    #define AST_STATUS_RELEASED ...

    #define AST_BEGIN_RUNNING ...
    #define AST_BEGIN_COMPLETE ...
    #define AST_NEXT_EMPTY ...
    #define AST_END_COMPLETE ...
    #define AST_END_IDLE ...
    #define AST_END_REQUEUED ...

    #define AST_AW_WAITING ...
    #define AST_AW_REGISTERING ...
    #define AST_AW_WAKING ...

    struct ast_vtable;
    struct ast_raw_waker {
        const void *data;
        const struct ast_vtable *vtable;
    };
    struct ast_vtable {
        struct ast_raw_waker (*clone)(const void *);
        void (*wake)(const void *);
        void (*wake_by_ref)(const void *);
        void (*drop)(const void *);
    };
    /* Only the id is read from Python (it survives the task's free). */
    struct ast_task {
        uint64_t id;
        ...;
    };
    struct ast_queue;
    /* Caller-allocated, zero-initialized (zero is WAITING, no waker). */
    struct ast_atomic_waker {
        ...;
    };
    struct ast_next {
        struct ast_task *task;
        uint64_t id;
    };
    struct ast_error {
        int code;
        int op;
        uint64_t task;
        const void *data;
    };
    struct ast_task_info {
        int status;
        uint32_t holds;
        uint64_t id;
        uint64_t state;
        uint64_t calls[4];
    };
    struct ast_stress_result {
        uint64_t iterations;
        uint64_t saw_flag;
        uint64_t woken;
        uint64_t lost;
        uint64_t polls;
        int64_t refs_left;
        uint64_t calls[4];
        uint64_t elapsed_ns;
        uint64_t begin_saw_waking;
        uint64_t end_woke;
    };

    const struct ast_error *ast_last_error(void);

    /* Registry and quarantine */
    uint64_t ast_live_tasks(void);
    uint64_t ast_quarantined(void);
    uint64_t ast_quarantine_flush(void);

    /* The run queue */
    struct ast_queue *ast_queue_new(void);
    int64_t ast_queue_close(struct ast_queue *q);
    void ast_queue_release(struct ast_queue *q);
    struct ast_task *ast_queue_pop(struct ast_queue *q);
    size_t ast_queue_len(struct ast_queue *q);
    size_t ast_queue_ids(struct ast_queue *q, uint64_t *out, size_t cap);
    uint64_t ast_queue_tasks(struct ast_queue *q);
    uint64_t ast_queue_spare_nodes(struct ast_queue *q);
    void ast_queue_set_unpark_fd(struct ast_queue *q, int fd);
    int ast_queue_park(struct ast_queue *q);
    void ast_queue_unpark(struct ast_queue *q);

    /* The vtable, and calls through it reporting the call's error */
    const struct ast_vtable *ast_vtable(void);
    int ast_raw_clone(const struct ast_raw_waker *w, struct ast_raw_waker *out);
    int ast_raw_wake(const struct ast_raw_waker *w);
    int ast_raw_wake_by_ref(const struct ast_raw_waker *w);
    int ast_raw_drop(const struct ast_raw_waker *w);
    int ast_raw_will_wake(const struct ast_raw_waker *a, const struct ast_raw_waker *b);

    /* Tasks */
    int ast_task_new(struct ast_queue *q, int schedule, struct ast_task **out);
    int ast_task_waker(struct ast_task *t, struct ast_raw_waker *out);
    int ast_task_poll_begin(struct ast_task *t);
    int ast_queue_next(struct ast_queue *q, struct ast_next *out);
    int ast_task_poll_end(struct ast_task *t, int ready);
    int ast_task_release_join(struct ast_task *t);
    int ast_task_cancel(struct ast_task *t);
    uint64_t ast_task_id(const struct ast_task *t);
    int ast_task_info(uint64_t id, struct ast_task_info *out);
    const void *ast_task_ptr(uint64_t id);
    int ast_task_waker_by_id(uint64_t id, struct ast_raw_waker *out);

    /* AtomicWaker: the steps, and the whole operations made of them */
    int ast_aw_register_begin(struct ast_atomic_waker *aw, const struct ast_raw_waker *w);
    int ast_aw_register_store(struct ast_atomic_waker *aw, const struct ast_raw_waker *w);
    int ast_aw_register_end(struct ast_atomic_waker *aw);
    int ast_aw_take_begin(struct ast_atomic_waker *aw);
    int ast_aw_take_end(struct ast_atomic_waker *aw, int prev, struct ast_raw_waker *out);
    int ast_aw_register(struct ast_atomic_waker *aw, const struct ast_raw_waker *w);
    int ast_aw_take(struct ast_atomic_waker *aw, struct ast_raw_waker *out);
    int ast_aw_wake(struct ast_atomic_waker *aw);
    int ast_aw_state(const struct ast_atomic_waker *aw);
    struct ast_raw_waker ast_aw_peek(const struct ast_atomic_waker *aw);
    int ast_aw_drop(struct ast_atomic_waker *aw);

    /* Threaded stress tests and a benchmark */
    int ast_stress_atomic_waker(uint64_t iters, uint64_t seed, struct ast_stress_result *out);
    int ast_stress_remote_wakes(uint64_t threads, uint64_t iters, struct ast_stress_result *out);
    int64_t ast_bench_wakes(uint64_t n);
"""

# C11 atomics and threads (the stress tests start pthreads).
COMPILE_ARGS = ["-std=gnu11", "-pthread"]
LINK_ARGS = ["-pthread"]

with open(os.path.join(HERE, "task.c")) as f:
    _c_source = f.read()

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "asyncspec.impl._task",
    _c_source,
    extra_compile_args=COMPILE_ARGS,
    extra_link_args=LINK_ARGS,
)


# ------------------------------------------------------------------ variants


def build_variant(name: str, defines, tmpdir: str):
    """Compile task.c with `defines` ("NAME" or "NAME=VALUE", passed as -D)
    into a cffi module in `tmpdir`, import it and return it (its `ffi` and
    `lib` have the same declarations as asyncspec.impl._task); see
    asyncspec.impl.variants."""
    from asyncspec.impl import variants

    return variants.build(
        "task",
        name,
        defines,
        tmpdir,
        cdef=CDEF,
        c_source=_c_source,
        extra_compile_args=COMPILE_ARGS,
        extra_link_args=LINK_ARGS,
    )


if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
