# anetrain — plain Makefile. `make help` lists the targets and the variables.
#
# Optional libraries are found by what links, not by which header exists (a
# header can be there while the library is not, or belong to another one):
# the first build in a build directory compiles and links a tiny program
# against each candidate and writes what worked to $(BUILD)/probe.mk.
#   BLAS:  OpenBLAS (pkg-config openblas, then -lopenblas), then the system
#          -lblas with cblas.h (netlib or OpenBLAS behind Debian's
#          alternatives), then the in-tree GEMM; Accelerate on macOS.
#   cJSON: pkg-config libcjson, then -lcjson; else built without it.
#   PCRE2, utf8proc (Hugging Face tokenizers: split regex, NFC): pkg-config
#          libpcre2-8 / libutf8proc, then -lpcre2-8 / -lutf8proc; else without.
#   ncursesw (anetrain dash): pkg-config ncursesw, then -lncursesw, then
#          -lncurses (macOS's system ncurses is wide); each must link the
#          wide-character calls. Else dash says how to get it.
#   MPI (train over several processes, src/train/dist_mpi.c): pkg-config
#          ompi-c, then mpicc --showme's flags; else the single-process dist.
# The probe reruns when this Makefile, the compiler or /etc/ld.so.cache (which
# ldconfig rewrites whenever a library package is installed or removed)
# changes; `make reconfigure` forces it.
#
# Every object depends on $(BUILD)/config.stamp, which holds the effective
# compiler, flags and libraries and is rewritten only when they change: so
# `make BLAS=none`, `make SAN=1`, `make PORTABLE=1` or a new CFLAGS rebuild
# what they affect, and never link objects compiled for another configuration.

BUILD ?= build
BIN   ?= anetrain
UNAME := $(shell uname -s)
.DEFAULT_GOAL := all

# CFLAGS/LDFLAGS/LDLIBS are the user's; what the build itself needs lives in
# the XC*/X* variables, so `make CFLAGS=-O1` changes the optimization without
# dropping -std=c11 or -Isrc.
CFLAGS  ?= -O3 -g
XCFLAGS := -std=c11 -Wall -Wextra -pedantic -D_GNU_SOURCE -Isrc -MMD -MP
XLDFLAGS :=
XLDLIBS := -lm -lpthread

# --- platform / CPU features -------------------------------------------------
ifeq ($(UNAME),Darwin)
  BLAS ?= accelerate
  # the ane device (src/ane/ane_macos.c): Objective-C runtime, CF, IOSurface, dlopen
  XLDLIBS += -framework Foundation -framework CoreFoundation -framework IOSurface -lobjc -ldl
else ifneq ($(PORTABLE),1)
  # AVX2/FMA/F16C paths (src/cpu/vmath.h, src/train/optim.c, src/core/fp16.c)
  # switch on from the compiler's macros; PORTABLE=1 builds for any CPU of the
  # architecture (binaries copied between machines).
  XCFLAGS += -march=native
endif

# --- probe: what links (cached in $(BUILD)/probe.mk) ---------------------------
PROBE := $(BUILD)/probe.mk
PROBE_KEY := $(CC) $(CFLAGS) $(LDFLAGS)
# No probe when both are given, or when the goals need no configuration (the
# fuzz targets of a normal build only call make again with their own BUILD).
ifneq ($(and $(BLAS),$(CJSON),$(PCRE2),$(UTF8PROC),$(NCURSES),$(MPI)),)
  NO_PROBE := 1
endif
NO_PROBE_GOALS := clean help $(if $(filter fuzz,$(SAN)),,fuzz fuzz-build fuzz-seeds)
ifneq ($(MAKECMDGOALS),)
  ifeq ($(filter-out $(NO_PROBE_GOALS),$(MAKECMDGOALS)),)
    NO_PROBE := 1
  endif
endif
ifneq ($(NO_PROBE),1)
  -include $(PROBE)
endif

# The probe script (sh). $1 = probe directory, $2 = output file; CC and the
# flags come from the environment. Each candidate is one link of a program
# that calls what the build needs (cblas_sgemm, openblas_set_num_threads,
# cJSON_Parse); the linker's words go to probe.log.
define PROBE_SH
dir=$$1; out=$$2
log=$$dir/probe.log
: > "$$log"
printf '%s\n' '#include <cblas.h>' \
  'int main(void) {' \
  '    float a = 1, b = 1, c = 0;' \
  '    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1.0f, &a, 1, &b, 1, 0.0f, &c, 1);' \
  '    return c != 1.0f;' \
  '}' > "$$dir/cblas.c"
printf '%s\n' '#include <cblas.h>' 'void openblas_set_num_threads(int);' \
  'int main(void) {' \
  '    float a = 1, b = 1, c = 0;' \
  '    openblas_set_num_threads(1);' \
  '    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1.0f, &a, 1, &b, 1, 0.0f, &c, 1);' \
  '    return c != 1.0f;' \
  '}' > "$$dir/openblas.c"
printf '%s\n' '#include <cjson/cJSON.h>' \
  'int main(void) { cJSON *j = cJSON_Parse("{}"); int ok = j != 0; cJSON_Delete(j); return !ok; }' \
  > "$$dir/cjson.c"
printf '%s\n' '#define PCRE2_CODE_UNIT_WIDTH 8' '#include <pcre2.h>' \
  'int main(void) { int e; PCRE2_SIZE o; pcre2_code *r = pcre2_compile((PCRE2_SPTR)"a", 1, PCRE2_UTF | PCRE2_UCP, &e, &o, 0);' \
  '    int ok = r != 0; pcre2_code_free(r); return !ok; }' > "$$dir/pcre2.c"
printf '%s\n' '#include <stdlib.h>' '#include <utf8proc.h>' \
  'int main(void) { utf8proc_uint8_t *o = utf8proc_NFC((const utf8proc_uint8_t *)"e"); int ok = o != 0; free(o); return !ok; }' \
  > "$$dir/utf8proc.c"
printf '%s\n' '#define _XOPEN_SOURCE_EXTENDED 1' '#include <curses.h>' \
  'int main(void) { cchar_t c; wchar_t w[2] = {120, 0}; int (*add)(WINDOW *, const cchar_t *) = wadd_wch;' \
  '    return setcchar(&c, w, 0, 0, 0) != OK || !add; }' > "$$dir/ncurses.c"
printf '%s\n' '#include <mpi.h>' \
  'int main(void) { int f = 0; MPI_Initialized(&f); return MPI_Allreduce(MPI_IN_PLACE, &f, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD) != 0; }' \
  > "$$dir/mpi.c"
links() {
  src=$$1; shift
  echo "--- $$CC $$CFLAGS $$LDFLAGS $$dir/$$src.c $$*" >> "$$log"
  $$CC $$CFLAGS $$LDFLAGS -o "$$dir/a.out" "$$dir/$$src.c" "$$@" >> "$$log" 2>&1
}
pc() { command -v pkg-config > /dev/null 2>&1 && pkg-config "$$@" 2> /dev/null; }
# the parents of pkg-config's -I dirs too: sources include <cjson/cJSON.h>,
# and Homebrew's libcjson.pc points into .../include/cjson
parents() { for f in $$1; do case $$f in -I*) printf ' %s/..' "$$f";; esac; done; }

blas=none; why=""; sysref=""
if pc --exists openblas; then
  cf=$$(echo $$(pc --cflags openblas)); lb=$$(echo $$(pc --libs openblas))
  if links openblas $$cf $$lb; then blas=openblas; why="pkg-config openblas ($$lb) links"
  else why="pkg-config openblas ($$lb) does not link"; fi
else why="no pkg-config openblas"; fi
if [ $$blas = none ]; then
  cf=""; [ -f /usr/include/openblas/cblas.h ] && cf=-I/usr/include/openblas
  lb=-lopenblas
  if links openblas $$cf $$lb; then blas=openblas; why="$$why; -lopenblas links"
  else why="$$why; -lopenblas does not link"; fi
fi
if [ $$blas = none ]; then
  for lb in -lblas -lcblas; do
    if links cblas $$lb; then
      blas=system; why="$$why; system $$lb with cblas.h links"
      # which library that is matters for speed: OpenBLAS (alternatives) or a reference BLAS
      if links openblas $$lb; then why="$$why (it is OpenBLAS)"; else why="$$why (not OpenBLAS)"; sysref=1; fi
      break
    fi
    why="$$why; $$lb with cblas.h does not link"
  done
  [ $$blas = none ] && why="$$why: using the in-tree GEMM"
fi
cjson=none; cwhy=""
if pc --exists libcjson; then
  ccf=$$(echo $$(pc --cflags libcjson)); clb=$$(echo $$(pc --libs libcjson))
  if links cjson $$ccf $$clb; then cjson=yes; cwhy="pkg-config libcjson ($$clb) links"
  elif ccf="$$ccf$$(parents "$$ccf")" && links cjson $$ccf $$clb; then
    cjson=yes; cwhy="pkg-config libcjson ($$clb, include dir's parent) links"
  else cwhy="pkg-config libcjson does not link"; fi
else cwhy="no pkg-config libcjson"; fi
if [ $$cjson = none ]; then
  ccf=""; clb=-lcjson
  if links cjson $$clb; then cjson=yes; cwhy="$$cwhy; -lcjson links"
  else cwhy="$$cwhy; -lcjson does not link: built without cJSON"; fi
fi
# PCRE2 and utf8proc: the same two steps as cJSON (pkg-config, then the plain -l)
lib() {  # lib NAME PKG LIB: sets lcf, llb, lok, lwhy
  lok=none; lcf=""; llb=""; lwhy=""
  if pc --exists $$2; then
    lcf=$$(echo $$(pc --cflags $$2)); llb=$$(echo $$(pc --libs $$2))
    if links $$1 $$lcf $$llb; then lok=yes; lwhy="pkg-config $$2 ($$llb) links"; return; fi
    lwhy="pkg-config $$2 does not link"
  else lwhy="no pkg-config $$2"; fi
  lcf=""; llb=-l$$3
  if links $$1 $$llb; then lok=yes; lwhy="$$lwhy; $$llb links"
  else lwhy="$$lwhy; $$llb does not link: built without it"; fi
}
lib pcre2 libpcre2-8 pcre2-8; pcre2=$$lok; pcf=$$lcf; plb=$$llb; pwhy=$$lwhy
lib utf8proc libutf8proc utf8proc; u8p=$$lok; ucf=$$lcf; ulb=$$llb; uwhy=$$lwhy
lib ncurses ncursesw ncursesw; ncw=$$lok; ncf=$$lcf; nlb=$$llb; nwhy=$$lwhy
if [ $$ncw = none ]; then
  if links ncurses -lncurses; then ncw=yes; ncf=""; nlb=-lncurses; nwhy="$$nwhy; -lncurses links (wide)"
  else nwhy="$$nwhy; -lncurses does not link wide: dash is built without a terminal"; fi
fi
# MPI: pkg-config ompi-c (Debian's OpenMPI), then what the mpicc wrapper would add
mpi=none; mcf=""; mlb=""
if pc --exists ompi-c; then
  mcf=$$(echo $$(pc --cflags ompi-c)); mlb=$$(echo $$(pc --libs ompi-c))
  if links mpi $$mcf $$mlb; then mpi=yes; mwhy="pkg-config ompi-c ($$mlb) links"
  else mwhy="pkg-config ompi-c does not link"; fi
else mwhy="no pkg-config ompi-c"; fi
if [ $$mpi = none ]; then
  if command -v mpicc > /dev/null 2>&1; then
    mcf=$$(echo $$(mpicc --showme:compile 2> /dev/null)); mlb=$$(echo $$(mpicc --showme:link 2> /dev/null))
    if [ -n "$$mlb" ] && links mpi $$mcf $$mlb; then mpi=yes; mwhy="$$mwhy; mpicc --showme ($$mlb) links"
    else mwhy="$$mwhy; mpicc --showme's flags do not link: built without MPI"; fi
  else mwhy="$$mwhy; no mpicc: built without MPI"; fi
fi
{
  echo "# Written by make: what links with the key below. Delete it (or make reconfigure) to probe again."
  echo "PROBED_KEY := $$(echo $$CC $$CFLAGS $$LDFLAGS)"
  echo "PROBED_BLAS := $$blas"
  echo "PROBED_BLAS_WHY := $$why"
  if [ $$blas = openblas ]; then echo "OPENBLAS_CFLAGS := $$cf"; echo "OPENBLAS_LIBS := $$lb"; fi
  if [ $$blas = system ]; then echo "SYSTEM_BLAS_LIBS := $$lb"; echo "SYSTEM_BLAS_REFERENCE := $$sysref"; fi
  echo "PROBED_CJSON := $$cjson"
  echo "PROBED_CJSON_WHY := $$cwhy"
  if [ $$cjson = yes ]; then echo "CJSON_CFLAGS := $$ccf"; echo "CJSON_LIBS := $$clb"; fi
  echo "PROBED_PCRE2 := $$pcre2"; echo "PROBED_PCRE2_WHY := $$pwhy"
  if [ $$pcre2 = yes ]; then echo "PCRE2_CFLAGS := $$pcf"; echo "PCRE2_LIBS := $$plb"; fi
  echo "PROBED_UTF8PROC := $$u8p"; echo "PROBED_UTF8PROC_WHY := $$uwhy"
  if [ $$u8p = yes ]; then echo "UTF8PROC_CFLAGS := $$ucf"; echo "UTF8PROC_LIBS := $$ulb"; fi
  echo "PROBED_NCURSES := $$ncw"; echo "PROBED_NCURSES_WHY := $$nwhy"
  if [ $$ncw = yes ]; then echo "NCURSES_CFLAGS := $$ncf"; echo "NCURSES_LIBS := $$nlb"; fi
  echo "PROBED_MPI := $$mpi"; echo "PROBED_MPI_WHY := $$mwhy"
  if [ $$mpi = yes ]; then echo "MPI_CFLAGS := $$mcf"; echo "MPI_LIBS := $$mlb"; fi
} > "$$out"
rm -f "$$dir/a.out"
endef
export PROBE_SH

# Reprobe when the compiler or its flags changed since the last probe.
ifneq ($(NO_PROBE),1)
  ifneq ($(strip $(PROBED_KEY)),$(strip $(PROBE_KEY)))
    $(PROBE): FORCE
  endif
endif
$(PROBE): Makefile $(wildcard /etc/ld.so.cache)
	@mkdir -p $(BUILD)/probe
	@echo "probing for OpenBLAS, the system BLAS, cJSON, PCRE2, utf8proc, ncursesw and MPI (log: $(BUILD)/probe/probe.log)"
	@CC='$(CC)' CFLAGS='$(CFLAGS)' LDFLAGS='$(LDFLAGS)' sh -c "$$PROBE_SH" probe $(BUILD)/probe $@.tmp
	@mv $@.tmp $@

# --- BLAS ----------------------------------------------------------------------
ifeq ($(BLAS),)
  BLAS := $(or $(PROBED_BLAS),none)
  BLAS_AUTO := 1
  BLAS_WHY := auto: $(PROBED_BLAS_WHY)
else
  BLAS_WHY := set by $(if $(filter file,$(origin BLAS)),the Makefile (macOS default),the $(origin BLAS))
endif
ifeq ($(BLAS),openblas)
  ifndef OPENBLAS_LIBS
    OPENBLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null) \
                       $(if $(wildcard /usr/include/openblas/cblas.h),-I/usr/include/openblas)
    OPENBLAS_LIBS := $(or $(shell pkg-config --libs openblas 2>/dev/null),-lopenblas)
  endif
  # HAVE_OPENBLAS: src/core/gemm.c may call openblas_set_num_threads
  XCFLAGS += -DUSE_CBLAS -DHAVE_OPENBLAS $(OPENBLAS_CFLAGS)
  XLDLIBS := $(OPENBLAS_LIBS) $(XLDLIBS)
else ifeq ($(BLAS),system)
  # netlib or whatever Debian's libblas.so points to; gemm.c looks the OpenBLAS
  # thread call up at run time (dlsym: -ldl before glibc 2.34)
  XCFLAGS += -DUSE_CBLAS
  XLDLIBS := $(or $(SYSTEM_BLAS_LIBS),-lblas) $(if $(filter Linux,$(UNAME)),-ldl) $(XLDLIBS)
else ifeq ($(BLAS),accelerate)
  XCFLAGS += -DUSE_CBLAS -DUSE_ACCELERATE -DACCELERATE_NEW_LAPACK
  XLDLIBS := -framework Accelerate $(XLDLIBS)
else ifneq ($(BLAS),none)
  $(error BLAS=$(BLAS): expected openblas, system, accelerate or none)
endif

# --- cJSON (Hugging Face config.json and safetensors) ----------------------------
# CJSON=none builds without it (HF files then give a clear error).
ifeq ($(CJSON),)
  CJSON := $(or $(PROBED_CJSON),none)
  CJSON_AUTO := 1
  CJSON_WHY := auto: $(PROBED_CJSON_WHY)
else
  CJSON_WHY := set by the $(origin CJSON)
endif
ifeq ($(CJSON),yes)
  ifndef CJSON_LIBS
    CJSON_CFLAGS := $(shell pkg-config --cflags libcjson 2>/dev/null)
    CJSON_LIBS := $(or $(shell pkg-config --libs libcjson 2>/dev/null),-lcjson)
  endif
  XCFLAGS += -DUSE_CJSON $(CJSON_CFLAGS)
  XLDLIBS := $(CJSON_LIBS) $(XLDLIBS)
else ifneq ($(CJSON),none)
  $(error CJSON=$(CJSON): expected yes or none)
endif

# --- PCRE2 and utf8proc (Hugging Face tokenizers: the split regex, NFC) -----------
# PCRE2=none / UTF8PROC=none build without them (HF tokenizers then give a
# clear error naming the package).
ifeq ($(PCRE2),)
  PCRE2 := $(or $(PROBED_PCRE2),none)
  PCRE2_AUTO := 1
  PCRE2_WHY := auto: $(PROBED_PCRE2_WHY)
else
  PCRE2_WHY := set by the $(origin PCRE2)
endif
ifeq ($(PCRE2),yes)
  ifndef PCRE2_LIBS
    PCRE2_CFLAGS := $(shell pkg-config --cflags libpcre2-8 2>/dev/null)
    PCRE2_LIBS := $(or $(shell pkg-config --libs libpcre2-8 2>/dev/null),-lpcre2-8)
  endif
  XCFLAGS += -DUSE_PCRE2 $(PCRE2_CFLAGS)
  XLDLIBS := $(PCRE2_LIBS) $(XLDLIBS)
else ifneq ($(PCRE2),none)
  $(error PCRE2=$(PCRE2): expected yes or none)
endif
ifeq ($(UTF8PROC),)
  UTF8PROC := $(or $(PROBED_UTF8PROC),none)
  UTF8PROC_AUTO := 1
  UTF8PROC_WHY := auto: $(PROBED_UTF8PROC_WHY)
else
  UTF8PROC_WHY := set by the $(origin UTF8PROC)
endif
ifeq ($(UTF8PROC),yes)
  ifndef UTF8PROC_LIBS
    UTF8PROC_CFLAGS := $(shell pkg-config --cflags libutf8proc 2>/dev/null)
    UTF8PROC_LIBS := $(or $(shell pkg-config --libs libutf8proc 2>/dev/null),-lutf8proc)
  endif
  XCFLAGS += -DUSE_UTF8PROC $(UTF8PROC_CFLAGS)
  XLDLIBS := $(UTF8PROC_LIBS) $(XLDLIBS)
else ifneq ($(UTF8PROC),none)
  $(error UTF8PROC=$(UTF8PROC): expected yes or none)
endif

# --- ncursesw (anetrain dash's terminal) --------------------------------------------
# NCURSES=none builds without it (`anetrain dash` then says how to get it).
# Its flags (Debian's pkg-config adds -D_XOPEN_SOURCE=600) apply to the one
# file that includes curses.h.
ifeq ($(NCURSES),)
  NCURSES := $(or $(PROBED_NCURSES),none)
  NCURSES_AUTO := 1
  NCURSES_WHY := auto: $(PROBED_NCURSES_WHY)
else
  NCURSES_WHY := set by the $(origin NCURSES)
endif
ifeq ($(NCURSES),yes)
  ifndef NCURSES_LIBS
    NCURSES_CFLAGS := $(shell pkg-config --cflags ncursesw 2>/dev/null)
    NCURSES_LIBS := $(or $(shell pkg-config --libs ncursesw 2>/dev/null),-lncursesw)
  endif
  XCFLAGS += -DUSE_NCURSES
  XLDLIBS := $(NCURSES_LIBS) $(XLDLIBS)
$(BUILD)/src/dash/tui.o: XCFLAGS += $(NCURSES_CFLAGS)
else ifneq ($(NCURSES),none)
  $(error NCURSES=$(NCURSES): expected yes or none)
endif

# --- MPI (anetrain train over several processes: src/train/dist_mpi.c) ------------
# MPI=none builds the single-process dist (src/train/dist_single.c). Its
# include flags apply to the one file that includes mpi.h.
ifeq ($(MPI),)
  MPI := $(or $(PROBED_MPI),none)
  MPI_AUTO := 1
  MPI_WHY := auto: $(PROBED_MPI_WHY)
else
  MPI_WHY := set by the $(origin MPI)
endif
ifeq ($(MPI),yes)
  ifndef MPI_LIBS
    MPI_CFLAGS := $(shell pkg-config --cflags ompi-c 2>/dev/null)
    MPI_LIBS := $(or $(shell pkg-config --libs ompi-c 2>/dev/null),-lmpi)
  endif
  XCFLAGS += -DUSE_MPI
  XLDLIBS := $(MPI_LIBS) $(XLDLIBS)
$(BUILD)/src/train/dist_mpi.o: XCFLAGS += $(MPI_CFLAGS)
else ifneq ($(MPI),none)
  $(error MPI=$(MPI): expected yes or none)
endif

# --- sanitizers -------------------------------------------------------------------
# SAN=1: AddressSanitizer + UBSan. SAN=fuzz (set by `make fuzz`, with clang):
# the same plus libFuzzer's coverage, UB fatal so the fuzzer sees it.
ifeq ($(SAN),1)
  XCFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer
  XLDFLAGS += -fsanitize=address,undefined
else ifeq ($(SAN),fuzz)
  XCFLAGS  += -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  XLDFLAGS += -fsanitize=address,undefined
else ifneq ($(SAN),)
  $(error SAN=$(SAN): expected 1 (or fuzz, which make fuzz sets))
endif

ALL_CFLAGS  = $(XCFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(XLDFLAGS) $(LDFLAGS)
ALL_LDLIBS  = $(XLDLIBS) $(LDLIBS)

# --- sources -------------------------------------------------------------------------
# Portable library code: every .c under src/ except the CLI entry point and the
# macOS-only Objective-C device.
LIB_SRC  := $(filter-out src/cli/main.c,$(wildcard src/*/*.c))
ifneq ($(UNAME),Darwin)
  LIB_SRC := $(filter-out src/ane/ane_macos.c,$(LIB_SRC))
endif
# the dashboard's platform files: src/dash/*_linux.c or src/dash/*_macos.c
ifeq ($(UNAME),Darwin)
  LIB_SRC := $(filter-out src/dash/%_linux.c,$(LIB_SRC))
else
  LIB_SRC := $(filter-out src/dash/%_macos.c,$(LIB_SRC))
endif
CLI_MAIN := src/cli/main.c
TEST_SRC := $(wildcard tests/*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

# --- the config stamp ------------------------------------------------------------------
STAMP := $(BUILD)/config.stamp
STAMP_TEXT = CC=$(CC) CFLAGS=$(ALL_CFLAGS) LDFLAGS=$(ALL_LDFLAGS) LDLIBS=$(ALL_LDLIBS)
# Always run, but rewrite the file only when the text differs: make compares
# the stamp's time after the recipe, so unchanged flags rebuild nothing.
$(STAMP): FORCE
	@mkdir -p $(@D)
	@if [ "$$(cat $@ 2>/dev/null)" != '$(subst ','\'',$(STAMP_TEXT))' ]; then \
	  if [ -f $@ ]; then echo "configuration changed: rebuilding $(BUILD)"; fi; \
	  printf '%s\n' '$(subst ','\'',$(STAMP_TEXT))' > $@; \
	fi

# --- targets --------------------------------------------------------------------------
.PHONY: bench-tokenizer
.PHONY: all test bench bench-lora bench-qwen3 clean info help reconfigure fuzz fuzz-build fuzz-seeds FORCE
all: $(BIN)

$(BIN): $(BUILD)/$(CLI_MAIN:.c=.o) $(BUILD)/libanetrain.a $(STAMP)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o %.a,$^) $(ALL_LDLIBS)

$(BUILD)/libanetrain.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/test_runner: $(TEST_OBJ) $(BUILD)/libanetrain.a $(STAMP)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o %.a,$^) $(ALL_LDLIBS)

$(BUILD)/%.o: %.c $(STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Tests run from the project root; data files come from ../shared/data.
test: $(BIN) $(BUILD)/test_runner
	ANETRAIN_BIN=$(abspath $(BIN)) $(BUILD)/test_runner

bench: $(BIN) $(BUILD)/libanetrain.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $(BUILD)/bench_train bench/bench_train.c $(BUILD)/libanetrain.a $(ALL_LDLIBS)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $(BUILD)/gemm_peak bench/gemm_peak.c $(BUILD)/libanetrain.a $(ALL_LDLIBS)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $(BUILD)/mem_bw bench/mem_bw.c $(BUILD)/libanetrain.a $(ALL_LDLIBS)
	BENCH_BUILD=$(BUILD) ANETRAIN=$(abspath $(BIN)) bash bench/run.sh
	ANETRAIN_BIN=$(abspath $(BIN)) bash bench/sim_vs_cpu.sh stories15m 5 3
	ANETRAIN_BIN=$(abspath $(BIN)) bash bench/sim_vs_cpu.sh stories110m 4 2
	BENCH_BUILD=$(BUILD) ANETRAIN_BIN=$(abspath $(BIN)) bash bench/device_phases.sh stories110m 5
	BENCH_BUILD=$(BUILD) ANETRAIN_BIN=$(abspath $(BIN)) bash bench/device_phases.sh stories110m 5 --device-head
	BENCH_BUILD=$(BUILD) ANETRAIN_BIN=$(abspath $(BIN)) bash bench/device_phases.sh stories110m 5 --device-head --compact-vocab
	BENCH_BUILD=$(BUILD) ANETRAIN_BIN=$(abspath $(BIN)) bash bench/device_phases.sh stories110m 5 --device-head --serial-staging
	$(BIN) bench --model stories15m --steps 20 --accum 10
	ANETRAIN_BIN=$(abspath $(BIN)) bash bench/dist.sh stories15m 6 2 2 2
	$(MAKE) bench-qwen3

# Qwen3-0.6B full fine-tuning beside the PyTorch peer, with and without
# --recompute (~20 minutes: the peer takes ~80 s an update here).
bench-qwen3: $(BIN) $(BUILD)/libanetrain.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $(BUILD)/bench_train bench/bench_train.c $(BUILD)/libanetrain.a $(ALL_LDLIBS)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $(BUILD)/gemm_peak bench/gemm_peak.c $(BUILD)/libanetrain.a $(ALL_LDLIBS)
	BENCH_BUILD=$(BUILD) MODELS=qwen3-0.6b KINDS="fp32 torch fp32-recompute" ROUNDS=2 WARMUP=1 STEPS=2 \
	  CURVE_STEPS=0 bash bench/run.sh

# LoRA against full fine-tuning, here and in the PyTorch peer (needs python3-torch).
bench-lora: $(BIN)
	ANETRAIN_BIN=$(abspath $(BIN)) bash bench/lora.sh stories110m 8 4 2
	ANETRAIN_BIN=$(abspath $(BIN)) bash bench/lora.sh stories110m 8 4 2 static

# The Qwen3 tokenizer's encode speed beside the JavaScript reference (needs node + npm).
bench-tokenizer: $(BUILD)/bench_tokenizer
	BENCH_TOKENIZER=$(abspath $(BUILD)/bench_tokenizer) bash bench/tokenizer_speed.sh
$(BUILD)/bench_tokenizer: bench/bench_tokenizer.c $(BUILD)/libanetrain.a $(STAMP)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libanetrain.a $(ALL_LDLIBS)

# --- fuzzing ----------------------------------------------------------------------------
# One libFuzzer harness per file loader: fuzz/fuzz_NAME.c, seeded with the
# files its "// seeds:" line names (fuzz/seeds.sh). A new loader's harness is
# one more word here.
FUZZ_TARGETS := llama2c model_file tokenizer tokens ckpt ckpt_original hf_config safetensors \
                safetensors_index mil_parse mil_exec hf_tokenizer dash_log
FUZZ_BUILD   ?= build-fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_RUNS    ?=
FUZZ_DATA    ?= ../shared/data
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

ifeq ($(SAN),fuzz)
fuzz-build: $(FUZZ_BINS) $(BIN)

# libFuzzer with Debian's clang 14 needs libclang-rt-14-dev; say so instead of
# failing on a missing libclang_rt.fuzzer.
$(FUZZ_DIR)/libfuzzer.ok: $(STAMP)
	@mkdir -p $(@D)
	@printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
	  'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' > $(@D)/libfuzzer.c
	@$(CC) -fsanitize=fuzzer,address,undefined -o $(@D)/libfuzzer.out $(@D)/libfuzzer.c > $(@D)/libfuzzer.log 2>&1 || \
	  { echo "make fuzz: $(CC) cannot link libFuzzer (-fsanitize=fuzzer; $(@D)/libfuzzer.log)."; \
	    echo "  HINT: apt-get install clang libclang-rt-14-dev, or FUZZ_CC=<a clang with libFuzzer>"; exit 1; }
	@touch $@

$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h $(BUILD)/libanetrain.a $(FUZZ_DIR)/libfuzzer.ok $(STAMP)
	$(CC) $(ALL_CFLAGS) -Ifuzz -fsanitize=fuzzer -o $@ $< $(BUILD)/libanetrain.a $(ALL_LDLIBS)

$(FUZZ_DIR)/seeds/.done: $(BIN) fuzz/seeds.sh $(FUZZ_TARGETS:%=fuzz/fuzz_%.c)
	bash fuzz/seeds.sh $(FUZZ_DIR) $(BIN) $(FUZZ_DATA) $(FUZZ_TARGETS)
	@touch $@
fuzz-seeds: $(FUZZ_DIR)/seeds/.done

# Each harness for FUZZ_SECONDS on its corpus (new inputs kept in corpus/NAME,
# seeds read from seeds/NAME, and the inputs that once crashed it from
# fuzz/regress/NAME); crashes go to artifacts/ and fail the target after all
# have run. FUZZ_RUNS=N instead runs N inputs from seed 1: the same inputs on
# every machine, however fast (CI's gate; a campaign uses FUZZ_SECONDS).
FUZZ_LIMIT = $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS) -seed=1,-max_total_time=$(FUZZ_SECONDS))
fuzz: fuzz-build fuzz-seeds
	@mkdir -p $(FUZZ_DIR)/artifacts; failed=""; \
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t; \
	  echo "fuzz $$t: $(FUZZ_LIMIT)"; \
	  if ! $(FUZZ_DIR)/fuzz_$$t $(FUZZ_LIMIT) -timeout=20 -rss_limit_mb=2048 \
	      -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t- \
	      $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/seeds/$$t $$([ -d fuzz/regress/$$t ] && echo fuzz/regress/$$t) > $(FUZZ_DIR)/$$t.log 2>&1; then \
	    failed="$$failed $$t"; tail -n 40 $(FUZZ_DIR)/$$t.log; \
	  fi; \
	  grep -h -E 'stat::number_of_executed_units|stat::new_units_added' $(FUZZ_DIR)/$$t.log | tr '\n' ' '; echo; \
	done; \
	if [ -n "$$failed" ]; then echo "make fuzz: crashes in:$$failed (inputs in $(FUZZ_DIR)/artifacts/)"; exit 1; fi
else
# From any other build: the same targets in their own build directory, with clang.
fuzz fuzz-build fuzz-seeds:
	$(MAKE) BUILD=$(FUZZ_BUILD) BIN=$(FUZZ_BUILD)/anetrain CC=$(FUZZ_CC) BLAS=none SAN=fuzz \
	  FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_DATA=$(FUZZ_DATA) $@
endif

# --- configuration ------------------------------------------------------------------------
define HELP
targets:
  make                 build ./$(BIN)
  make test            build and run the test runner (ends with "N passed, N failed, N skipped")
  make bench           benchmarks (long; needs python3-torch for the PyTorch peer)
  make bench-lora      LoRA vs full fine-tuning on stories110m, beside the PyTorch peer (python3-torch)
  make bench-qwen3     qwen3-0.6b full fine-tuning (and --recompute) beside the PyTorch peer (~20 min)
  make bench-tokenizer the Qwen3 tokenizer's encode MB/s on one core beside the JS reference (node, npm)
  make info            what was detected (BLAS, cJSON), why, and the flags in use
  make reconfigure     probe the libraries again (after installing one on macOS, say)
  make fuzz            build the libFuzzer harnesses in $$(FUZZ_BUILD) with clang, make their
                       seeds, run each for FUZZ_SECONDS
  make fuzz-build      only build the harnesses;  make fuzz-seeds: only make the seeds
  make clean           remove $$(BUILD) and $$(BIN)
  make help            this list
variables (make VAR=value):
  BLAS=openblas|system|none|accelerate   GEMM backend (default: detected; accelerate on macOS)
  CJSON=yes|none       cJSON for Hugging Face files (default: detected)
  PCRE2=yes|none       PCRE2 for Hugging Face tokenizers' split regex (default: detected)
  UTF8PROC=yes|none    utf8proc for Hugging Face tokenizers' NFC (default: detected)
  NCURSES=yes|none     ncursesw for anetrain dash (default: detected)
  MPI=yes|none         OpenMPI for train over several processes (default: detected)
  PORTABLE=1           no -march=native: binaries that run on any machine of the architecture
  SAN=1                AddressSanitizer + UBSan
  BUILD=dir            objects, probe and config stamp (default build); one per configuration
                       avoids rebuilds, but changing flags in one directory is safe
  BIN=path             the anetrain binary (default ./anetrain)
  CC, CFLAGS, LDFLAGS, LDLIBS   compiler and extra flags (CFLAGS default -O3 -g)
  FUZZ_SECONDS=N       seconds per harness for make fuzz (default 60)
  FUZZ_RUNS=N          instead: N inputs per harness from a fixed seed (reproducible; CI)
  FUZZ_BUILD=dir       build directory of make fuzz (default build-fuzz); FUZZ_CC (default clang)
  FUZZ_DATA=dir        data files for the seeds (default ../shared/data)
endef
export HELP
help:
	@printf '%s\n' "$$HELP"

info:
	@printf '%s\n' \
	  'anetrain build configuration (BUILD=$(BUILD))' \
	  '  CC        $(CC): '"$$($(CC) --version 2>/dev/null | head -n 1)" \
	  '  BLAS      $(BLAS) ($(subst ','\'',$(BLAS_WHY)))' \
	  '  cJSON     $(CJSON) ($(subst ','\'',$(CJSON_WHY)))' \
	  '  PCRE2     $(PCRE2) ($(subst ','\'',$(PCRE2_WHY)))' \
	  '  utf8proc  $(UTF8PROC) ($(subst ','\'',$(UTF8PROC_WHY)))' \
	  '  ncursesw  $(NCURSES) ($(subst ','\'',$(NCURSES_WHY)))' \
	  '  MPI       $(MPI) ($(subst ','\'',$(MPI_WHY)))' \
	  '  CPU       $(if $(filter -march=native,$(XCFLAGS)),-march=native (PORTABLE=1 turns it off),default target)' \
	  '  SAN       $(or $(SAN),off)' \
	  '  CFLAGS    $(ALL_CFLAGS)' \
	  '  LDLIBS    $(ALL_LDLIBS)' \
	  '  cached    $(if $(NO_PROBE),(no probe: BLAS and CJSON given),$(PROBE); make reconfigure probes again)'
ifeq ($(BLAS_AUTO),1)
ifneq ($(BLAS),openblas)
	@echo '  HINT: the fast GEMM is OpenBLAS: apt-get install libopenblas-dev (then make; the probe reruns)'
endif
ifeq ($(BLAS)$(SYSTEM_BLAS_REFERENCE),system1)
	@echo '  NOTE: a reference -lblas (netlib) is unoptimized: at run time the in-tree GEMM runs instead (OpenBLAS is used when libblas.so.3 is OpenBLAS)'
endif
endif
ifeq ($(CJSON_AUTO)$(CJSON),1none)
	@echo '  HINT: Hugging Face config.json/safetensors need cJSON: $(if $(filter Darwin,$(UNAME)),brew install cjson,apt-get install libcjson-dev)'
endif
ifeq ($(PCRE2_AUTO)$(PCRE2),1none)
	@echo '  HINT: Hugging Face tokenizers (Qwen3) need PCRE2: $(if $(filter Darwin,$(UNAME)),brew install pcre2,apt-get install libpcre2-dev)'
endif
ifeq ($(UTF8PROC_AUTO)$(UTF8PROC),1none)
	@echo '  HINT: Hugging Face tokenizers (Qwen3) need utf8proc: $(if $(filter Darwin,$(UNAME)),brew install utf8proc,apt-get install libutf8proc-dev)'
endif
ifeq ($(NCURSES_AUTO)$(NCURSES),1none)
	@echo '  HINT: anetrain dash needs ncursesw: $(if $(filter Darwin,$(UNAME)),it is part of macOS (xcode-select --install),apt-get install libncurses-dev)'
endif

ifeq ($(MPI_AUTO)$(MPI),1none)
	@echo '  HINT: train over several processes (mpirun) needs OpenMPI: $(if $(filter Darwin,$(UNAME)),brew install open-mpi,apt-get install openmpi-bin libopenmpi-dev)'
endif

reconfigure:
	rm -f $(PROBE)
	@$(MAKE) --no-print-directory info

clean:
	rm -rf $(BUILD) $(BIN)

FORCE:

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/$(CLI_MAIN:.c=.d)
