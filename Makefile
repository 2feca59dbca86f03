# modelfs: a plain Makefile.
#   make                 build bin/ (tools, daemon, runner) and build/libmodelfs.a
#   make test            unit tests, tool tests and real FUSE mounts (root and /dev/fuse)
#   make bench           benchmarks; they print ratios against the strongest alternative
#   make demo            mount the bundled example and run it
#   make fuzz            run every libFuzzer target for FUZZ_SECONDS each (clang)
#   make install         PREFIX=/usr/local DESTDIR=
#   make WERROR=1        warnings are errors (CI)
#   make SANITIZER=address,undefined test   or SANITIZER=thread: builds into build-<sanitizer>/

PREFIX ?= /usr/local
DESTDIR ?=
VERSION := 0.1.0

CFLAGS ?= -O2 -g
WARN := -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
ifeq ($(WERROR),1)
WARN += -Werror
endif
# _GNU_SOURCE: pread, syncfs, memmem and friends; 64-bit off_t everywhere, as libfuse requires.
# -MMD -MP: header dependencies, so editing a header rebuilds what includes it.
MFS_CPPFLAGS := -Iinclude -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DMFS_VERSION='"$(VERSION)"' -MMD -MP
# -pthread: the decode engine and the daemon are multi-threaded.
MFS_CFLAGS := $(WARN) -pthread $(CFLAGS)
MFS_LDFLAGS := -pthread $(LDFLAGS)

comma := ,
ifdef SANITIZER
# -fno-omit-frame-pointer: readable sanitizer stack traces.
MFS_CFLAGS += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
MFS_LDFLAGS += -fsanitize=$(SANITIZER)
BUILD := build-$(subst $(comma),-,$(SANITIZER))
BIN := $(BUILD)/bin
else
BUILD := build
BIN := bin
endif

# Dependencies come from pkg-config; scripts/install-deps.sh installs them when one is missing.
PKGS := fuse3 libzstd libxxhash json-c cmocka
ifeq ($(filter clean distclean,$(MAKECMDGOALS)),)
ifneq ($(shell pkg-config --exists $(PKGS) 2>/dev/null && echo ok),ok)
$(info modelfs: a dependency is missing, running scripts/install-deps.sh)
DEPS_RC := $(shell scripts/install-deps.sh 1>&2; echo $$?)
ifneq ($(DEPS_RC),0)
$(error scripts/install-deps.sh failed; install the packages it names and run make again)
endif
endif
endif
FUSE_CFLAGS = $(shell pkg-config --cflags fuse3)
FUSE_LIBS = $(shell pkg-config --libs fuse3)
LOADER_LIBS = $(shell pkg-config --libs libzstd libxxhash json-c) -lm
CMOCKA_LIBS = $(shell pkg-config --libs cmocka)

# ---- sources: each module's directory; files named cli_*.c or main.c hold a program's main()
LOADER_SRC := $(filter-out loader/cli_%.c,$(wildcard loader/*.c))
INFER_SRC := $(filter-out infer/main.c infer/cli_%.c,$(wildcard infer/*.c))
FS_SRC := $(filter-out fs/main.c,$(wildcard fs/*.c))

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
LIB := $(BUILD)/libmodelfs.a
INFER_LIB := $(BUILD)/libmfsinfer.a
FS_LIB := $(BUILD)/libmfsfs.a

TOOLS := $(BIN)/modelfs-pack $(BIN)/modelfs-inspect
ifneq ($(wildcard fs/main.c),)
TOOLS += $(BIN)/modelfs
endif
ifneq ($(wildcard infer/main.c),)
TOOLS += $(BIN)/modelfs-run
endif
# The runner's quantizer (Q4_K_M and friends).
ifneq ($(wildcard infer/cli_quantize.c),)
TOOLS += $(BIN)/modelfs-quantize
endif

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))
REPLAY_BIN := $(addprefix $(BUILD)/fuzz-replay/,$(FUZZ_NAMES))

.PHONY: all test unit-test bench demo fuzz install uninstall clean
all: $(TOOLS) $(LIB)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(MFS_CPPFLAGS) $(MFS_CFLAGS) -c -o $@ $<

# The daemon's files are the only ones that see FUSE headers.
$(BUILD)/fs/%.o: fs/%.c
	@mkdir -p $(dir $@)
	$(CC) $(MFS_CPPFLAGS) $(FUSE_CFLAGS) $(MFS_CFLAGS) -c -o $@ $<

$(LIB): $(call obj,$(LOADER_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^
$(INFER_LIB): $(call obj,$(INFER_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^
$(FS_LIB): $(call obj,$(FS_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(BIN)/modelfs-pack: $(BUILD)/loader/cli_pack.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(MFS_CFLAGS) -o $@ $^ $(MFS_LDFLAGS) $(LOADER_LIBS)
$(BIN)/modelfs-inspect: $(BUILD)/loader/cli_inspect.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(MFS_CFLAGS) -o $@ $^ $(MFS_LDFLAGS) $(LOADER_LIBS)
$(BIN)/modelfs: $(BUILD)/fs/main.o $(FS_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(MFS_CFLAGS) -o $@ $^ $(MFS_LDFLAGS) $(FUSE_LIBS) $(LOADER_LIBS)
$(BIN)/modelfs-run: $(BUILD)/infer/main.o $(INFER_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(MFS_CFLAGS) -o $@ $^ $(MFS_LDFLAGS) $(LOADER_LIBS)
$(BIN)/modelfs-quantize: $(BUILD)/infer/cli_quantize.o $(INFER_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(MFS_CFLAGS) -o $@ $^ $(MFS_LDFLAGS) $(LOADER_LIBS)

# Unit tests link every library there is; a test uses what it needs.
TEST_LIBS := $(if $(INFER_SRC),$(INFER_LIB)) $(if $(FS_SRC),$(FS_LIB)) $(LIB)
$(BUILD)/tests/%: tests/unit/%.c $(TEST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(MFS_CPPFLAGS) $(MFS_CFLAGS) -Itests/unit -o $@ $< $(TEST_LIBS) $(MFS_LDFLAGS) $(CMOCKA_LIBS) \
	    $(LOADER_LIBS) $(if $(FS_SRC),$(FUSE_LIBS))

# Small programs the mount tests drive (mmap as llama.cpp does, threaded random preads).
HELPER_BIN := $(patsubst tests/helpers/%.c,$(BUILD)/tests/helpers/%,$(wildcard tests/helpers/*.c))
$(BUILD)/tests/helpers/%: tests/helpers/%.c
	@mkdir -p $(dir $@)
	$(CC) $(MFS_CPPFLAGS) $(MFS_CFLAGS) -o $@ $< $(MFS_LDFLAGS)
# errfs: a FUSE passthrough that fails operations on demand (the source on a failing disk).
$(BUILD)/tests/helpers/errfs: tests/helpers/errfs.c
	@mkdir -p $(dir $@)
	$(CC) $(MFS_CPPFLAGS) $(FUSE_CFLAGS) $(MFS_CFLAGS) -o $@ $< $(MFS_LDFLAGS) $(FUSE_LIBS)

unit-test: $(UNIT_BIN) $(REPLAY_BIN)
	MFS_BUILD=$(BUILD) MFS_BIN=$(BIN) tests/run.sh --unit

# TESTS="NAME..." runs only the tests whose names contain one of the NAMEs.
test: all $(UNIT_BIN) $(REPLAY_BIN) $(HELPER_BIN)
	MFS_SANITIZER=$(SANITIZER) MFS_BUILD=$(BUILD) MFS_BIN=$(BIN) tests/run.sh $(TESTS)

# Benchmark helpers live in tests/bench/; they are built, never installed.
BENCH_BIN := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(wildcard tests/bench/*.c))
$(BUILD)/bench/%: tests/bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(MFS_CPPFLAGS) $(MFS_CFLAGS) -o $@ $< $(LIB) $(MFS_LDFLAGS) $(LOADER_LIBS)

bench: all $(BENCH_BIN)
	MFS_BIN=$(BIN) MFS_BUILD=$(BUILD) scripts/bench-all

# The demo builds in parallel (a fresh clone builds in about half the time) and never trains:
# the model is examples/kjv-demo.mfz (scripts/train-demo.py made it; docs/demo-model.md).
demo:
	$(MAKE) -j$$(nproc) all
	MFS_BIN=$(BIN) scripts/demo.sh

# libFuzzer targets need clang; each is built from the sources, not the libraries, so the
# fuzzer instruments them. The same targets, linked with tests/fuzz/replay.c instead of
# libFuzzer, replay the committed corpora and regressions in `make test`.
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
# Of infer/, only the tokenizer reads untrusted bytes; the kernels' `#pragma GCC target` is GCC's.
FUZZ_INFER_SRC := $(filter infer/tokenizer.c infer/tok_unicode.c,$(INFER_SRC))
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LOADER_SRC) $(FUZZ_INFER_SRC)
	@mkdir -p $(dir $@)
	clang $(MFS_CPPFLAGS) -Iloader -std=c11 -pthread $(FUZZ_CFLAGS) -o $@ $< $(LOADER_SRC) $(FUZZ_INFER_SRC) $(LOADER_LIBS)
fuzz: $(addprefix $(BUILD)/fuzz/fuzz_,$(FUZZ_NAMES))
	FUZZ_SECONDS=$(FUZZ_SECONDS) MFS_BUILD=$(BUILD) tests/fuzz/run.sh $(FUZZ_NAMES)

$(BUILD)/fuzz-replay/%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(TEST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(MFS_CPPFLAGS) -Iloader $(MFS_CFLAGS) -o $@ $< tests/fuzz/replay.c $(TEST_LIBS) $(MFS_LDFLAGS) $(LOADER_LIBS)

# Man pages are generated from --help and --version; NAME lines are given here (a tool without one
# gets the second line of its --help).
MANPAGES := $(patsubst $(BIN)/%,$(BUILD)/man/%.1,$(TOOLS))
MAN_NAME_modelfs := mount a directory of models read-only, each shown as a GGUF file to mmap
MAN_NAME_modelfs-pack := compress a model file so that modelfs can serve it with random access
MAN_NAME_modelfs-inspect := print what modelfs sees in a model file, without mounting
MAN_NAME_modelfs-run := generate text with a Llama-family GGUF model by mapping it
MAN_NAME_modelfs-quantize := requantize the matrices of a llama-family GGUF
$(BUILD)/man/%.1: $(BIN)/%
	@mkdir -p $(dir $@)
	help2man --no-info --no-discard-stderr --name="$(or $(MAN_NAME_$*),$$($< --help 2>&1 | sed -n 2p))" -o $@ ./$<

# sbin/mount.modelfs: mount(8)'s helper for fstab entries of type "modelfs" (mount(8) looks in
# /sbin, so it is found with PREFIX=/usr; type "fuse.modelfs" needs only modelfs in the PATH).
install: all $(MANPAGES)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/lib \
	    $(DESTDIR)$(PREFIX)/include/modelfs
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(MANPAGES) $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/*.h $(DESTDIR)$(PREFIX)/include/modelfs/
	if [ -e $(BIN)/modelfs ]; then install -d $(DESTDIR)$(PREFIX)/sbin && \
	    ln -sf ../bin/modelfs $(DESTDIR)$(PREFIX)/sbin/mount.modelfs; fi

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(notdir $(TOOLS))) $(DESTDIR)$(PREFIX)/sbin/mount.modelfs
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/share/man/man1/,$(notdir $(MANPAGES)))
	rm -f $(DESTDIR)$(PREFIX)/lib/libmodelfs.a
	rm -rf $(DESTDIR)$(PREFIX)/include/modelfs

clean:
	rm -rf build build-* bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
