# shellcheck shell=bash
#
# The steps scripts/test and scripts/demo share: install the Debian 12
# packages the build needs (only those that are missing), then configure and
# build. Source it from the repository root; it only defines functions and
# variables and runs nothing by itself.

# Everything needed to build, test and run the demo on Debian 12.
readonly required_packages=(
    cmake
    g++
    ninja-build
    ccache
    pkg-config
    libboost1.81-dev
    libboost-json1.81-dev
    libboost-url1.81-dev
    libspdlog-dev
    libssl-dev
    libsystemd-dev
    libgtest-dev
    libgmock-dev
    python3
    openssl
    curl
    ca-certificates
    systemd # systemd-analyze, systemd-socket-activate, sysusers, tmpfiles: tests
    # promtool, which checks the /metrics page in the tests
    prometheus
    tinyproxy # a real HTTP proxy for the CONNECT tests
    dpkg-dev  # dpkg-shlibdeps: the .deb's Depends, for cpack
    file      # cpack's DEB generator runs it on the files it packs
    # The sanitizer build and the fuzzers; llvm-14 has llvm-symbolizer, for
    # readable sanitizer reports.
    clang
    libclang-rt-14-dev
    llvm-14
)

# The build folder. IAM_TOKEND_BUILD_DIR selects another one, e.g. to keep a
# second build next to the usual one.
build_dir="${IAM_TOKEND_BUILD_DIR:-build}"

# Prints a step header, so the output reads as a list of what happened.
step() {
    printf '\n==> %s\n' "$*"
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Prints those of the packages named that are not installed, one a line.
missing_packages() {
    local package status
    for package in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null) || status=""
        if [[ $status != "install ok installed" ]]; then
            printf '%s\n' "$package"
        fi
    done
}

# Installs the missing packages with apt-get, as root or through sudo: the
# required ones, and any named as arguments. Does nothing (and never calls
# apt-get) when all are there.
install_missing_packages() {
    if ! command -v dpkg-query >/dev/null; then
        die "dpkg-query not found: these scripts expect Debian 12"
    fi

    local -a missing
    mapfile -t missing < <(missing_packages "${required_packages[@]}" "$@")
    if ((${#missing[@]} == 0)); then
        return 0
    fi

    local -a as_root=()
    if ((EUID != 0)); then
        if ! command -v sudo >/dev/null; then
            die "missing packages: ${missing[*]}." \
                "Run this script as root, or install them first:" \
                "apt-get install ${missing[*]}"
        fi
        as_root=(sudo)
    fi

    step "Installing missing packages: ${missing[*]}"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Configures the build folder the first time, then builds. Later runs only
# build: CMake re-runs itself when a CMakeLists.txt changes.
configure_and_build() {
    if [[ ! -f $build_dir/CMakeCache.txt ]]; then
        step "Configuring the build in $build_dir/"
        cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
    elif [[ ! -f $build_dir/build.ninja && ! -f $build_dir/Makefile ]]; then
        # An earlier configure stopped half-way: run it again with the
        # settings already in the cache.
        step "Configuring the build in $build_dir/ again"
        cmake -S . -B "$build_dir"
    fi

    step "Building"
    cmake --build "$build_dir" -j "$(nproc)"
}

# The second build, preset "sanitize" in CMakePresets.json: clang with
# AddressSanitizer and UBSan, and the libFuzzer targets of tests/fuzz.
readonly sanitize_build_dir=build-sanitize

configure_and_build_sanitized() {
    if [[ ! -f $sanitize_build_dir/build.ninja ]]; then
        step "Configuring the sanitizer build in $sanitize_build_dir/"
        cmake --preset sanitize
    fi

    step "Building with the sanitizers"
    cmake --build "$sanitize_build_dir" -j "$(nproc)"
}
