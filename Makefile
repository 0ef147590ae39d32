# lymphdet — build the library, the CLI, the tests and the sanitizer build.
#
#   sh tools/deps.sh   install the Debian packages the build needs (as root)
#   make demo       train -> detect -> evaluate on the bundled data/busi-demo, into out/demo
#   make check      the test suite, the same suite under ASan + UBSan, the fuzz corpora replayed
#   make            liblymphdet.a, liblymphdet.so and the lymphdet binary in build/
#   make test       build and run the test suite (ends with "N passed, N failed")
#   make sanitize   the same suite built with AddressSanitizer + UBSan, in build-san/
#   make install    PREFIX=/usr/local: library, headers, binary and lymphdet.pc
#   make golden     regenerate tests/golden/ with PyTorch and numpy (/usr/bin/python3)
#
# WERROR=1 turns warnings into errors (CI sets it).

PREFIX   ?= /usr/local
BUILD    ?= build
CC       ?= cc
PKGS     := libpng libjpeg jansson libxml-2.0 cairo
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
VERSION  := 0.1.0

CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wvla
# gcc warns when a message might be cut to fit its buffer: cutting is intended
ifeq ($(findstring clang,$(CC)),)
WARN     += -Wno-format-truncation
endif
ifeq ($(WERROR),1)
WARN     += -Werror
endif
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -DLD_VERSION=\"$(VERSION)\" \
              $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) -Iinclude -Isrc $(PKG_CFLAGS) -fPIC -pthread
LDLIBS   := $(PKG_LIBS) -lm -pthread

LIB_SRC  := $(sort $(wildcard src/*.c))
CLI_SRC  := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
HEADERS  := $(wildcard include/lymphdet/*.h src/*.h cli/*.h tests/*.h)

# SIMD kernels (src/kernels.h): one object per instruction set, picked at run time by
# what the CPU supports; only these two files get the extra instruction sets.
ifneq ($(filter x86_64-%,$(shell $(CC) -dumpmachine)),)
$(BUILD)/src/kernels_avx2.o: ALL_CFLAGS += -mavx2 -mfma
$(BUILD)/src/kernels_avx512.o: ALL_CFLAGS += -mavx512f -mavx2 -mfma
endif

# the resize passes (image.c) run along rows of pixels: let gcc vectorise them at -O2
# as clang does (gcc's -O2 cost model vectorises only loops of known length)
ifeq ($(findstring clang,$(CC)),)
$(BUILD)/src/image.o: ALL_CFLAGS += -fvect-cost-model=dynamic
endif

.PHONY: all demo check test sanitize install clean golden bench
all: $(BUILD)/lymphdet $(BUILD)/liblymphdet.so

$(BUILD)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/liblymphdet.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/liblymphdet.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDLIBS)

$(BUILD)/lymphdet: $(CLI_OBJ) $(BUILD)/liblymphdet.a
	$(CC) $(ALL_CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/liblymphdet.a $(LDLIBS)

# cli/lsan_suppress.c: LeakSanitizer's suppression of fontconfig's cache, for every
# program that draws (the CLI, the tests, the fuzz targets)
LSAN_OBJ := $(BUILD)/cli/lsan_suppress.o

$(BUILD)/run_tests: $(TEST_OBJ) $(LSAN_OBJ) $(BUILD)/liblymphdet.a
	$(CC) $(ALL_CFLAGS) -o $@ $(TEST_OBJ) $(LSAN_OBJ) $(BUILD)/liblymphdet.a $(LDLIBS)

demo: $(BUILD)/lymphdet
	sh tools/demo.sh $(BUILD)/lymphdet data/busi-demo out/demo

# sequential even under -j: the sanitizer build reuses nothing of the plain one
check:
	$(MAKE) test
	$(MAKE) sanitize
	$(MAKE) fuzz-replay

test: $(BUILD)/run_tests $(BUILD)/lymphdet
	LYMPHDET=$(BUILD)/lymphdet $(BUILD)/run_tests

sanitize:
	$(MAKE) test BUILD=build-san CC=clang CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"

# build/bench (bench/bench.c) and the CLI it drives; bench/run.sh runs it with the peer
bench: $(BUILD)/bench $(BUILD)/lymphdet

$(BUILD)/bench: bench/bench.c $(HEADERS) $(BUILD)/liblymphdet.a
	$(CC) $(ALL_CFLAGS) -o $@ bench/bench.c $(BUILD)/liblymphdet.a $(LDLIBS)

golden:
	/usr/bin/python3 tools/gen_golden.py tests/golden
	/usr/bin/python3 tools/gen_golden_det.py tests/golden
	/usr/bin/python3 tools/coco_reference.py tests/golden/coco_cases.json

install: all $(BUILD)/liblymphdet.a
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/lymphdet
	install -m 755 $(BUILD)/lymphdet $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/liblymphdet.a $(BUILD)/liblymphdet.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/lymphdet/*.h $(DESTDIR)$(PREFIX)/include/lymphdet/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@REQUIRES@|$(PKGS)|' \
	    lymphdet.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/lymphdet.pc

clean:
	rm -rf build build-san

# ---- reliability (docs/reliability.md) --------------------------------------------
#   make fuzz          libFuzzer targets build-fuzz/fuzz_* (clang, ASan + UBSan)
#   make fuzz-replay   runs every input of fuzz/corpus/* and fuzz/regress/* through them
#   make valgrind      the CLI end to end under valgrind memcheck (tests/valgrind.sh)
# Run one target:  build-fuzz/fuzz_coco -max_total_time=600 -jobs=1 fuzz/corpus/coco
FUZZ_NAMES  := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined -fsanitize=fuzzer-no-link
.PHONY: fuzz fuzz-targets fuzz-replay valgrind

fuzz:
	$(MAKE) fuzz-targets BUILD=build-fuzz CC=clang CFLAGS="$(FUZZ_CFLAGS)"

fuzz-targets: $(FUZZ_NAMES:%=$(BUILD)/fuzz_%)

$(BUILD)/fuzz_%: fuzz/fuzz_%.c $(wildcard fuzz/*.h) $(LSAN_OBJ) $(BUILD)/liblymphdet.a
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $< $(LSAN_OBJ) $(BUILD)/liblymphdet.a $(LDLIBS)

# files, not folders, on the command line: libFuzzer then runs each once and writes nothing
fuzz-replay: fuzz
	@set -e; for t in $(FUZZ_NAMES); do \
	  files=$$(find fuzz/corpus/$$t fuzz/regress/$$t -type f 2>/dev/null | sort); \
	  [ -n "$$files" ] || { echo "fuzz-replay: no inputs for $$t"; exit 1; }; \
	  build-fuzz/fuzz_$$t -runs=1 $$files >build-fuzz/replay_$$t.log 2>&1 || \
	    { tail -n 40 build-fuzz/replay_$$t.log; echo "fuzz-replay: $$t FAILED"; exit 1; }; \
	  echo "fuzz-replay: $$t: $$(echo "$$files" | wc -l) inputs ok"; \
	done

valgrind: $(BUILD)/lymphdet
	tests/valgrind.sh $(BUILD)/lymphdet
