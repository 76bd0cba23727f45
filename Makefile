# anetrain — plain Makefile.
#   make            build ./anetrain
#   make test       build and run the test runner (ends with "N passed, N failed")
#   make bench      benchmarks (long; needs python3-torch for the peer)
#   make BLAS=none  use the in-tree GEMM instead of OpenBLAS/Accelerate
#   make SAN=1 BUILD=build-san BIN=build-san/anetrain   AddressSanitizer + UBSan build
#   make BUILD=dir  put objects elsewhere (lets several builds share one tree)

BUILD ?= build
BIN   ?= anetrain
CC    ?= cc
UNAME := $(shell uname -s)

CFLAGS  ?= -O3 -g
CFLAGS  += -std=c11 -Wall -Wextra -pedantic -D_GNU_SOURCE -Isrc -MMD -MP
LDLIBS  += -lm -lpthread

# --- platform / CPU features -------------------------------------------------
ifeq ($(UNAME),Darwin)
  BLAS ?= accelerate
  # the ane device (src/ane/ane_macos.c): Objective-C runtime, CF, IOSurface, dlopen
  LDLIBS += -framework Foundation -framework CoreFoundation -framework IOSurface -lobjc -ldl
else
  CFLAGS += -march=native
endif

# --- BLAS autodetect ----------------------------------------------------------
ifeq ($(BLAS),)
  ifneq ($(wildcard /usr/include/x86_64-linux-gnu/cblas.h /usr/include/cblas.h /usr/include/openblas/cblas.h),)
    BLAS := openblas
  else
    BLAS := none
  endif
endif
ifeq ($(BLAS),openblas)
  CFLAGS += -DUSE_CBLAS
  LDLIBS += -lopenblas
  ifneq ($(wildcard /usr/include/openblas/cblas.h),)
    CFLAGS += -I/usr/include/openblas
  endif
endif
ifeq ($(BLAS),accelerate)
  CFLAGS += -DUSE_CBLAS -DUSE_ACCELERATE -DACCELERATE_NEW_LAPACK
  LDLIBS += -framework Accelerate
endif

# --- cJSON (Hugging Face config.json and safetensors), autodetected ------------
# make CJSON=none builds without it (HF files then give a clear error).
ifeq ($(CJSON),)
  ifneq ($(wildcard /usr/include/cjson/cJSON.h /usr/local/include/cjson/cJSON.h /opt/homebrew/include/cjson/cJSON.h),)
    CJSON := yes
  else
    CJSON := none
  endif
endif
ifeq ($(CJSON),yes)
  CFLAGS += -DUSE_CJSON $(shell pkg-config --cflags libcjson 2>/dev/null)
  LDLIBS += $(shell pkg-config --libs libcjson 2>/dev/null || echo -lcjson)
endif

ifeq ($(SAN),1)
  CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=address,undefined
endif

# Portable library code: every .c under src/ except the CLI entry point and the
# macOS-only Objective-C device.
LIB_SRC  := $(filter-out src/cli/main.c,$(wildcard src/*/*.c))
ifneq ($(UNAME),Darwin)
  LIB_SRC := $(filter-out src/ane/ane_macos.c,$(LIB_SRC))
endif
CLI_MAIN := src/cli/main.c
TEST_SRC := $(wildcard tests/*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all test bench clean info
all: $(BIN)

$(BIN): $(BUILD)/$(CLI_MAIN:.c=.o) $(BUILD)/libanetrain.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libanetrain.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/test_runner: $(TEST_OBJ) $(BUILD)/libanetrain.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# Tests run from the project root; data files come from ../shared/data.
test: $(BIN) $(BUILD)/test_runner
	ANETRAIN_BIN=$(abspath $(BIN)) $(BUILD)/test_runner

bench: $(BIN) $(BUILD)/libanetrain.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $(BUILD)/bench_train bench/bench_train.c $(BUILD)/libanetrain.a $(LDLIBS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $(BUILD)/gemm_peak bench/gemm_peak.c $(BUILD)/libanetrain.a $(LDLIBS)
	BENCH_BUILD=$(BUILD) ANETRAIN=$(abspath $(BIN)) bash bench/run.sh
	ANETRAIN_BIN=$(abspath $(BIN)) bash bench/sim_vs_cpu.sh stories15m 3 2

info:
	@echo "CC=$(CC) BLAS=$(BLAS) CJSON=$(CJSON) UNAME=$(UNAME)"

clean:
	rm -rf $(BUILD) $(BIN)

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/$(CLI_MAIN:.c=.d)
