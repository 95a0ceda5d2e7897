#!/usr/bin/env bash
# Build the AArch64 fiber checks -- tests/impl/aarch64/fiber_abi_test.c with
# impl/fiber/fiber.c and impl/fiber/arch/aarch64.S, and the probe interpreter
# that the fibers run (conformance/targets/impl/probe/probe.c and its
# arch/aarch64.S) -- as one static program, and run it:
# natively on an AArch64 machine; elsewhere cross-compiled with Debian's
# aarch64-linux-gnu toolchain and run under qemu's user-mode emulator.
#
# Prints the program's report (one PASS/FAIL line per check, then
# "N passed, N failed") and exits with its status: 0 when every check
# passed.  Exits 77 (skipped) when a tool is missing; .ci/setup installs
# them.  Arguments select checks by name.  CC and QEMU override the tools.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)

skip() {
    echo "SKIP: $*"
    exit 77
}

run=()
case "$(uname -m)" in
aarch64 | arm64)
    cc=${CC:-cc}
    ;;
*)
    cc=${CC:-aarch64-linux-gnu-gcc}
    qemu=${QEMU:-}
    if [ -z "$qemu" ]; then
        for q in qemu-aarch64 qemu-aarch64-static; do
            if command -v "$q" >/dev/null 2>&1; then
                qemu=$q
                break
            fi
        done
    fi
    [ -n "$qemu" ] || skip "no qemu-aarch64 or qemu-aarch64-static (Debian package: qemu-user)"
    run=("$qemu")
    ;;
esac
command -v "$cc" >/dev/null 2>&1 || skip "no $cc (Debian package: gcc-aarch64-linux-gnu)"
# -print-file-name echoes the bare name when the library is not installed.
case "$("$cc" -print-file-name=libc.a)" in
/*) ;;
*) skip "$cc has no static C library (Debian package: libc6-dev-arm64-cross)" ;;
esac

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT

# Relative source paths, so no machine path ends up in the program.  Frame
# pointers everywhere, as in the library's own build (impl/fiber/build.py).
cd "$root"
"$cc" -static -O2 -Wall -Wextra -fno-omit-frame-pointer -Iimpl/fiber \
    -o "$build/fiber_abi_test" \
    tests/impl/aarch64/fiber_abi_test.c impl/fiber/arch/aarch64.S \
    conformance/targets/impl/probe/arch/aarch64.S tests/impl/aarch64/regs_helper.S \
    -lpthread

if [ ${#run[@]} -gt 0 ]; then
    how="under $("${run[0]}" --version | head -n 1)"
else
    how="natively"
fi
echo "aarch64 fiber checks: built with $cc $("$cc" -dumpfullversion), running $how"
status=0
"${run[@]}" "$build/fiber_abi_test" "$@" || status=$?
exit "$status"
