# One command each for a fresh machine: `make demo` (the main job) and `make test`.
# `make demo` builds .venv-runtime from nothing with `pip install '.[plot]'` (the runtime, the
# bundled demo model and matplotlib for its picture; no torch); `make test` builds .venv: the
# runtime, the export extra, the dev tools, matplotlib, Ray and the peer runtimes of `make bench`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_BIN := .venv-runtime/bin

.PHONY: demo demo-model bench test check lint clean native native-arm64 java

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[export,dev,bench,cluster,peers]'
	touch $@

$(RUNTIME_BIN)/.installed: pyproject.toml same_edge/VERSION $(wildcard same_edge/*.py) $(wildcard models/*.py) $(wildcard models/demo/*)
	$(PYTHON) -m venv .venv-runtime
	$(RUNTIME_BIN)/python -m pip install --quiet --upgrade pip
	$(RUNTIME_BIN)/python -m pip install --quiet '.[plot]'
	touch $@

# Main job: describe the bundled demo model, then stream the bundled music clip through its
# encoder and decoder in real-time-sized blocks: speed, latency, quality, a picture.
demo: $(RUNTIME_BIN)/.installed
	$(RUNTIME_BIN)/same-edge info
	$(RUNTIME_BIN)/same-edge demo --out build/demo

# The recipe of the bundled demo model (about an hour on a 2-core CPU): train, export, evaluate.
DEMO_PRECISION ?= w8a8
demo-model: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[recipe,dev]'
	$(BIN)/python -m same_edge_recipes.demo.train --out build/demo-train --minutes 56 --seed 0
	cp build/demo-train/model.safetensors models/demo/model.safetensors
	$(BIN)/same-edge export --config models/demo/model_config.json --checkpoint models/demo/model.safetensors \
		--precision $(DEMO_PRECISION) --fidelity-audio models/demo/clip.flac --out models/demo
	$(BIN)/python -m same_edge_recipes.demo.evaluate --model models/demo --data build/demo-train/data \
		--out models/demo/quality.json

# Every benchmark in one run (about an hour on a 2-core CPU): JSON, Markdown tables and PNG
# plots in benchmarks/results/, the numbers the README shows.
bench: $(BIN)/.installed native java
	$(BIN)/python benchmarks/run.py --out benchmarks/results

# Everything, as CI runs it (about 20 minutes on an idle 2-core machine), then the ten slowest tests.
test: lint native native-arm64 java
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=10

# The inner loop: ruff and every test but those marked slow (full-size SAME-S, fresh exports, the
# benchmark smoke run, Ray clusters, the memory-growth run), a test file per worker in
# CHECK_WORKERS pytest-xdist workers. The tiny fixture's conversion is kept in build/test-cache for
# the next run.
CHECK_WORKERS ?= 2
check: lint native native-arm64 java
	$(BIN)/python -m pytest -q -p no:cacheprovider -m 'not slow' -n $(CHECK_WORKERS) --dist loadfile --durations=5

lint: $(BIN)/.installed
	$(BIN)/ruff check same_edge same_edge_export same_edge_recipes tests benchmarks

# libsame_edge, its header, same-edge-native and the native tests into build/native, against the
# venv's libLiteRt.so; a second build of all of them with -fsanitize=address,undefined into
# build/native-asan (tests/test_native.py runs both). native/install-deps.sh installs cmake,
# libsndfile and libsoxr headers only when missing.
LITERT_LIB = $(shell $(BIN)/python -c "import ai_edge_litert, os; print(os.path.join(os.path.dirname(ai_edge_litert.__file__), 'libLiteRt.so'))")
native: $(BIN)/.installed
	bash native/install-deps.sh
	cmake -S native -B build/native -DLITERT_LIBRARY=$(LITERT_LIB) > /dev/null
	cmake --build build/native -j2
	cmake -S native -B build/native-asan -DLITERT_LIBRARY=$(LITERT_LIB) -DSAME_EDGE_SANITIZE=ON \
		-DCMAKE_BUILD_TYPE=Debug -DSAME_EDGE_BUILD_CLI=ON > /dev/null
	cmake --build build/native-asan -j2

# The same programs cross-built for 64-bit ARM Linux into build/native-arm64, against the aarch64
# ai-edge-litert wheel's libLiteRt.so (build/litert-arm64); tests/test_native_arm64.py runs them
# under qemu-user. native/install-deps-arm64.sh installs the cross compilers, arm64 libsndfile
# and libsoxr, qemu-user and that libLiteRt.so, only when missing.
native-arm64: $(BIN)/.installed
	bash native/install-deps-arm64.sh $(BIN)/python build/litert-arm64
	cmake -S native -B build/native-arm64 -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/native/cmake/aarch64-linux-gnu.cmake \
		-DLITERT_LIBRARY=$(CURDIR)/build/litert-arm64/libLiteRt.so > /dev/null
	cmake --build build/native-arm64 -j2

# The Java binding (bindings/java): the JNI shim libsame_edge_jni.so, same-edge.jar and its JUnit 5
# tests into build/java, against build/native. bindings/java/install-deps.sh installs a JDK 17, kotlin,
# junit5 and cmake only when missing; tests/test_java.py runs the tests on the Python runtime's outputs.
java: native
	bash bindings/java/install-deps.sh
	bash bindings/java/build.sh

clean:
	rm -rf $(VENV) .venv-runtime build
