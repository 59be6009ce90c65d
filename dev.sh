#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine:
#   ./dev.sh demo    install what is missing, build, run the demo guest
#   ./dev.sh test    install what is missing, build, run every test suite
#                    (a normal build with the Python bindings, an
#                    ASan+UBSan build, then every fuzz target with clang,
#                    HVCORE_FUZZ_SECONDS (25) each)
#   ./dev.sh fuzz [SECONDS]
#                    build with clang and run every fuzz target for
#                    SECONDS (300) each on its corpus in build-fuzz/fuzz/
#   ./dev.sh bench   install what is missing, build, run the benchmarks
#   ./dev.sh deps    only install what is missing
# Build trees: build/ (normal, with the Python venv in build/venv),
# build-asan/ (sanitizers) and build-fuzz/ (libFuzzer, clang).
set -euo pipefail
cd "$(dirname "$0")"

DEPS=(cmake make pkg-config gcc g++ binutils libcriterion-dev libelf-dev
      libnuma-dev libpci-dev libssl-dev abigail-tools acpica-tools
      clang libclang-rt-14-dev
      python3 python3-venv python3-setuptools python3-wheel python3-pytest)
PYTHON=/usr/bin/python3 # Debian's, whatever else is first on PATH
JOBS=$(nproc 2>/dev/null || echo 2)

die() { echo "dev.sh: $*" >&2; exit 1; }

install_deps() {
    local missing=()
    for p in "${DEPS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "dev.sh: installing ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null ||
            die "missing packages (${missing[*]}); run as root or install them"
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
        --no-install-recommends "${missing[@]}"
}

build() { # build DIR [cmake args...]
    local dir=$1
    shift
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$dir" -j "$JOBS"
}

kvm_usable() { [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; }

run_suites() { # run_suites DIR LABEL
    local dir=$1 label=$2 log
    log=$(mktemp)
    echo "== $label: ctest in $dir"
    set +e
    (cd "$dir" && ctest --output-on-failure --timeout 600) 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    set -e
    # Criterion prints one [SKIP] line per skipped test, ctest "***Skipped"
    # for a skipped script: a KVM test skipped while /dev/kvm is usable is a
    # failure, not a pass.
    # The Debian kernel tests may skip for another reason: the package
    # could not be downloaded (their output says why).
    local skipped='\[SKIP\]|\*\*\*Skipped'
    if kvm_usable &&
        grep -E "$skipped" "$log" | grep -vq 'debian_kernel_'; then
        grep -E "$skipped" "$log" | grep -v 'debian_kernel_' >&2
        rm -f "$log"
        die "$label: tests skipped although /dev/kvm is usable"
    fi
    # A sanitizer report in a forked Criterion worker does not always fail
    # its test (a leak is reported after the result is in), and ctest shows
    # only failing tests' output: the reports go to files, checked here.
    if [ -n "${SANITIZER_LOGS:-}" ] && [ -n "$(ls -A "$SANITIZER_LOGS")" ]; then
        cat "$SANITIZER_LOGS"/* >&2
        rm -f "$log"
        die "$label: sanitizer reports (above)"
    fi
    rm -f "$log"
    [ "$rc" -eq 0 ] || die "$label: tests failed"
}

# The Python bindings, installed with pip into a virtual environment as a
# user would, then their pytest suite run against the build's library.
run_python() { # run_python DIR
    local dir=$1 venv log
    venv=$(cd "$dir" && pwd)/venv
    log=$(mktemp)
    echo "== Python bindings: pip install and pytest"
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv --system-site-packages "$venv"
    "$venv/bin/pip" install -q --no-build-isolation --no-index \
        --force-reinstall ./bindings/python
    set +e
    (cd "$dir" && HVCORE_LIBRARY="$PWD/src/libhvcore.so.1" \
        HVCORE_BUILD_DIR="$PWD" "$venv/bin/python" -m pytest \
        -p no:cacheprovider -q "$OLDPWD/bindings/python/tests") 2>&1 |
        tee "$log"
    local rc=${PIPESTATUS[0]}
    set -e
    if kvm_usable && grep -Eq '[0-9]+ skipped' "$log"; then
        rm -f "$log"
        die "Python: tests skipped although /dev/kvm is usable"
    fi
    rm -f "$log"
    # pytest's 5 means no test ran: as much a failure as a failed test
    [ "$rc" -eq 0 ] || die "Python: pytest failed (status $rc)"
}

# The libFuzzer targets of tests/fuzz/ (listed by the build in
# build-fuzz/tests/fuzz_targets.txt), built with clang in build-fuzz/.
# Each runs SECONDS on its accumulated corpus build-fuzz/fuzz/<target>/
# plus the seeds written at build time (build-fuzz/fuzz/seeds/<target>/;
# the stream target also takes the suites' streams from SUITE_SEEDS). A
# crash, leak, hang, timeout or sanitizer report fails the step after every
# target has run; the input is kept in build-fuzz/fuzz/crashes/ and the
# log in build-fuzz/fuzz/<target>.log. Output is one line per target (no
# terminal needed: CI reads the same lines).
run_fuzz() { # run_fuzz SECONDS [SUITE_SEEDS]
    local dir=build-fuzz secs=$1 suite_seeds=${2:-}
    if ! command -v clang >/dev/null; then
        echo "dev.sh: no clang here: the fuzz step is skipped" >&2
        return 0
    fi
    if ! kvm_usable; then
        echo "dev.sh: /dev/kvm is not usable here: the fuzz step is skipped" >&2
        return 0
    fi
    # Warnings are the gcc builds' business: clang's own (GNU extensions)
    # must not stop the fuzzer.
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_COMPILER=clang -DHVCORE_FUZZ=ON -DHVCORE_WERROR=OFF \
        -DHVCORE_BUILD_EXAMPLES=OFF -DHVCORE_BUILD_BENCH=OFF >/dev/null
    # The whole tree, not only the fuzzers: clang must build every guest.
    cmake --build "$dir" -j "$JOBS"
    local work targets
    work=$(cd "$dir" && pwd)/fuzz
    read -r -a targets <"$dir/tests/fuzz_targets.txt"
    mkdir -p "$work/crashes"
    rm -rf "$work/seeds"
    mkdir -p "$work/seeds/stream"
    "$dir/tests/make_seeds" "$work/seeds/stream"
    "$dir/tests/fuzz_seeds" "$work/seeds"
    echo "== fuzz: ${#targets[@]} targets, ${secs} s each"
    local t failed=() total=0
    for t in "${targets[@]}"; do
        local log=$work/$t.log extra=()
        mkdir -p "$work/$t" "$work/seeds/$t"
        if [ "$t" = stream ] && [ -n "$suite_seeds" ] && [ -d "$suite_seeds" ]
        then
            extra=("$suite_seeds")
        fi
        set +e
        timeout $((secs + 300)) "$dir/tests/fuzz_$t" -max_total_time="$secs" \
            -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
            -artifact_prefix="$work/crashes/$t-" "$work/$t" \
            "$work/seeds/$t" "${extra[@]}" >"$log" 2>&1
        local rc=$?
        set -e
        local done_line execs rate
        done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 ||
            true)
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        if [ "$rc" -ne 0 ] || [ -z "$done_line" ]; then
            tail -n 60 "$log" >&2
            echo "dev.sh: fuzz: fuzz_$t FAILED (status $rc; log $log," \
                "input in $work/crashes/)" >&2
            failed+=("$t")
            continue
        fi
        total=$((total + ${execs:-0}))
        printf 'dev.sh: fuzz: %-8s %10s executions (%6s/s), %s\n' "$t" \
            "${execs:-?}" "${rate:-?}" "$(echo "$done_line" |
                sed -E 's/.*(cov: [0-9]+ ft: [0-9]+ corp: [^ ]+).*/\1/')"
    done
    [ ${#failed[@]} -eq 0 ] || die "fuzz: failed: ${failed[*]}"
    echo "dev.sh: fuzz: $total executions in all"
}

cmd=${1:-}
case "$cmd" in
deps)
    install_deps
    ;;
demo)
    install_deps
    build build
    ./build/examples/hello
    ;;
test)
    install_deps
    if kvm_usable; then
        export HVCORE_REQUIRE_KVM=1
    else
        echo "dev.sh: /dev/kvm is not usable here: KVM tests will skip" >&2
    fi
    # The suites write small valid streams here for the fuzzer's seeds.
    export HVCORE_FUZZ_CORPUS=$PWD/build-fuzz/fuzz/suite-seeds
    rm -rf "$HVCORE_FUZZ_CORPUS"
    mkdir -p "$HVCORE_FUZZ_CORPUS"
    build build -DHVCORE_HVF_ON_KVM=ON
    run_suites build "default build"
    run_python build
    build build-asan -DHVCORE_SANITIZE=ON -DHVCORE_BUILD_BENCH=OFF \
        -DHVCORE_HVF_ON_KVM=ON
    SANITIZER_LOGS=$PWD/build-asan/sanitizer-logs
    rm -rf "$SANITIZER_LOGS"
    mkdir -p "$SANITIZER_LOGS"
    ASAN_OPTIONS=detect_leaks=1:log_path=$SANITIZER_LOGS/asan \
        UBSAN_OPTIONS=print_stacktrace=1:log_path=$SANITIZER_LOGS/ubsan \
        SANITIZER_LOGS=$SANITIZER_LOGS run_suites build-asan "ASan+UBSan build"
    echo "dev.sh: all test suites passed in both configurations"
    # Every fuzz target, time-boxed (HVCORE_FUZZ_SECONDS each, 25 by
    # default: CI's budget is 90 minutes, the suites take about 15).
    run_fuzz "${HVCORE_FUZZ_SECONDS:-25}" "$HVCORE_FUZZ_CORPUS"
    ;;
fuzz)
    install_deps
    secs=${2:-300}
    case "$secs" in
    '' | *[!0-9]*) die "fuzz: SECONDS must be a number, not '$secs'" ;;
    esac
    run_fuzz "$secs" "$PWD/build-fuzz/fuzz/suite-seeds"
    ;;
bench)
    install_deps
    build build
    ./build/bench/exit_latency
    ./build/bench/snapshot
    ./build/bench/launch
    ./build/bench/postcopy
    ;;
-h | --help | help)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    ;;
*)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
