# Strongroom — the two commands are `make demo` and `make test`.
#
# Everything installed lives under $(CACHE) (outside the clone, reused by later
# runs): the Python venv with the pinned emulator, cargo-machete, and cargo's
# target dir.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CACHE ?= $(HOME)/.cache/strongroom
VENV := $(CACHE)/venv
C7N_VENV := $(CACHE)/venv-c7n
INFRA_VENV := $(CACHE)/venv-infra
CHECKOV_VENV := $(CACHE)/venv-checkov
TOOLS := $(CACHE)/tools
PYTHON := $(VENV)/bin/python
export CARGO_TARGET_DIR ?= $(CACHE)/target
export STRONGROOM_PYTHON := $(PYTHON)
# The backup state machine as the SAM stack deploys it (make check-infra), for the state machine tests.
export STRONGROOM_DEPLOYED_BACKUP := $(CACHE)/infra/backup.deployed.asl.json
# The restore state machine as the SAM stack deploys it (make check-infra).
export STRONGROOM_DEPLOYED_RESTORE := $(CACHE)/infra/restore.deployed.asl.json
export PATH := $(VENV)/bin:$(PATH)
CARGO ?= cargo
NPM_TOOLS := tools/node_modules/.bin

REQS := tests/emulator/requirements.txt
VENV_STAMP := $(VENV)/.stamp-$(shell cat $(REQS) | cksum | cut -d' ' -f1)
C7N_STAMP := $(C7N_VENV)/.stamp-$(shell cat bench/requirements-c7n.txt | cksum | cut -d' ' -f1)
INFRA_STAMP := $(INFRA_VENV)/.stamp-$(shell cat infra/requirements.txt | cksum | cut -d' ' -f1)
CHECKOV_STAMP := $(CHECKOV_VENV)/.stamp-$(shell cat infra/requirements-checkov.txt | cksum | cut -d' ' -f1)
NPM_STAMP := tools/node_modules/.stamp-$(shell cat tools/package-lock.json | cksum | cut -d' ' -f1)
CDK_STAMP := infra/cdk/node_modules/.stamp-$(shell cat infra/cdk/package-lock.json | cksum | cut -d' ' -f1)
CDK_ENV := CDK_DISABLE_CLI_TELEMETRY=true CDK_DISABLE_VERSION_CHECK=1
MACHETE_VERSION := 0.9.2
MACHETE_STAMP := $(TOOLS)/.stamp-cargo-machete-$(MACHETE_VERSION)
# Debian packages that tests/fsimages/build.py runs to make the filesystem images,
# as tool:package (the tools are in /usr/sbin, which a non-root PATH may lack).
FSIMAGE_TOOLS := mkfs.ext4:e2fsprogs debugfs:e2fsprogs e2fsck:e2fsprogs mkfs.xfs:xfsprogs xfs_db:xfsprogs \
	xfs_repair:xfsprogs mkntfs:ntfs-3g ntfs-3g:ntfs-3g ntfscat:ntfs-3g sgdisk:gdisk sfdisk:fdisk
FSIMAGE_STAMP := $(TOOLS)/.stamp-fsimage-tools-$(shell echo '$(FSIMAGE_TOOLS)' | cksum | cut -d' ' -f1)

.PHONY: help setup demo test unit lint check-infra infra-check check-emulator check-fsimages build-functions build bench bench-scale bench-copies bench-restores bench-files schema deploy clean-cache

help:
	@echo "make demo    start the emulator, seed a small estate, run a backup end to end"
	@echo "make test    formatting, lints, unit, emulator and state machine tests, ASL checks"
	@echo "make setup   install the pinned tools (Python venv with moto, cargo-lambda; asl-validator; cargo-machete;"
	@echo "             Debian's e2fsprogs, xfsprogs, ntfs-3g, gdisk, fdisk for the filesystem images)"
	@echo "make check-fsimages  build ext4/XFS/NTFS and signature-only images, read each back with the fs tools"
	@echo "make build   release Lambda binaries with cargo-lambda (target/lambda/<fn>/bootstrap)"
	@echo "make bench   API calls vs Cloud Custodian, cold start and RSS -> BENCHMARKS.md"
	@echo "make schema  regenerate infra/schemas/*.schema.json (run input, restore request) from the types"
	@echo "make infra-check  ASL, SAM (sam validate, translator, cfn-lint, IAM guards), CDK (tests, cdk-nag, synth), SAM = CDK, checkov; offline"
	@echo "make deploy  sam build + sam deploy --guided (ARCH=x86_64|arm64; needs AWS credentials)"

setup: $(VENV_STAMP) $(INFRA_STAMP) $(CHECKOV_STAMP) $(NPM_STAMP) $(CDK_STAMP) $(MACHETE_STAMP) $(FSIMAGE_STAMP)

$(VENV_STAMP): $(REQS)
	@command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
	@echo "==> Python venv with the pinned emulator in $(VENV)"
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	@$(PYTHON) -m pip install --quiet --disable-pip-version-check -r $(REQS)
	@rm -f $(VENV)/.stamp-* && touch $@

$(INFRA_STAMP): infra/requirements.txt
	@command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
	@echo "==> Python venv with SAM CLI and cfn-lint (pinned) in $(INFRA_VENV)"
	@test -x $(INFRA_VENV)/bin/python || python3 -m venv $(INFRA_VENV)
	@$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	@rm -f $(INFRA_VENV)/.stamp-* && touch $@

$(CHECKOV_STAMP): infra/requirements-checkov.txt
	@echo "==> Python venv with checkov (pinned) in $(CHECKOV_VENV)"
	@test -x $(CHECKOV_VENV)/bin/python || python3 -m venv $(CHECKOV_VENV)
	@$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/requirements-checkov.txt
	@rm -f $(CHECKOV_VENV)/.stamp-* && touch $@

$(NPM_STAMP): tools/package.json tools/package-lock.json
	@command -v npm >/dev/null || { echo "npm is required for the ASL checks (apt-get install npm)" >&2; exit 1; }
	@echo "==> Node tools (asl-validator) in tools/node_modules"
	@cd tools && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@rm -f tools/node_modules/.stamp-* && touch $@

$(CDK_STAMP): infra/cdk/package.json infra/cdk/package-lock.json
	@command -v npm >/dev/null || { echo "npm is required for the CDK app (apt-get install npm)" >&2; exit 1; }
	@echo "==> CDK app's packages (aws-cdk-lib, cdk-nag, TypeScript; pinned) in infra/cdk/node_modules"
	@cd infra/cdk && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@rm -f infra/cdk/node_modules/.stamp-* && touch $@

# cargo-machete finds dependencies a Cargo.toml declares and no source uses.
# Built from crates.io with its own lock file, in a throwaway target dir (not
# the shared one, which a running build may hold locked).
$(MACHETE_STAMP):
	@echo "==> cargo-machete $(MACHETE_VERSION) in $(TOOLS)"
	@env -u CARGO_TARGET_DIR $(CARGO) install cargo-machete --locked --version $(MACHETE_VERSION) \
		--root $(TOOLS) --quiet
	@rm -f $(TOOLS)/.stamp-cargo-machete-* && touch $@

# The filesystem image tools: each missing one's package is installed with apt-get
# (as root, or through sudo without a password), else setup stops naming the packages.
$(FSIMAGE_STAMP):
	@echo "==> Debian packages for the filesystem images (e2fsprogs, xfsprogs, ntfs-3g, gdisk, fdisk)"
	@missing=""; for pair in $(FSIMAGE_TOOLS); do \
		PATH="$$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v "$${pair%%:*}" >/dev/null \
			|| missing="$$missing $${pair##*:}"; done; \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); missing="$${missing% }"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then sudo=""; \
		elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo"; \
		else echo "missing Debian package(s) for the filesystem images: $$missing; as root: apt-get install -y --no-install-recommends $$missing" >&2; exit 1; fi; \
		echo "    apt-get install $$missing"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
			|| { echo "apt-get install $$missing failed" >&2; exit 1; }; \
	fi
	@mkdir -p $(TOOLS) && rm -f $(TOOLS)/.stamp-fsimage-tools-* && touch $@

$(C7N_STAMP): bench/requirements-c7n.txt
	@echo "==> Cloud Custodian venv in $(C7N_VENV)"
	@test -x $(C7N_VENV)/bin/python || python3 -m venv $(C7N_VENV)
	@$(C7N_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements-c7n.txt
	@rm -f $(C7N_VENV)/.stamp-* && touch $@

# Debug function binaries for the emulator (tests and demo). `cargo test` below
# reuses every dependency this builds: features are declared once in the
# workspace, including those only dev-dependencies would turn on, so the SDK is
# compiled once; `make lint` fails if that stops being true.
build-functions:
	@echo "==> Building the functions (debug; the first build compiles the AWS SDK: ~6 min on 2 cores)"
	@$(CARGO) build --workspace --bins

demo: setup build-functions
	@$(PYTHON) tests/emulator/demo.py --functions-dir $(CARGO_TARGET_DIR)/debug

lint: $(MACHETE_STAMP)
	@echo "==> cargo machete (no unused dependencies)"
	@$(TOOLS)/bin/cargo-machete
	@echo "==> cargo fmt --check"
	@$(CARGO) fmt --all --check
	@echo "==> one build of the SDK for cargo build and cargo test (cargo tree, no compiling)"
	@CARGO="$(CARGO)" tools/check-one-sdk-build.sh
	@echo "==> cargo clippy -D warnings"
	@$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings

# `make infra-check` is the same target.
infra-check: check-infra

check-infra: $(NPM_STAMP) $(INFRA_STAMP) $(CHECKOV_STAMP) $(CDK_STAMP)
	@echo "==> asl-validator on every state machine"
	@for f in infra/statemachines/*.asl.json; do $(NPM_TOOLS)/asl-validator --json-path $$f; done
	@echo "==> sam validate --lint (offline)"
	@SAM_CLI_TELEMETRY=0 $(INFRA_VENV)/bin/sam validate --lint --region us-east-1 -t infra/template.yaml
	@echo "==> CDK app: tsc, its tests (aws-cdk-lib/assertions, cdk-nag), cdk synth with placeholder artifacts"
	@cd infra/cdk && node_modules/.bin/tsc -p . && node --test dist/test/ > $(CACHE)/cdk-test.log 2>&1 \
		|| { cat $(CACHE)/cdk-test.log; exit 1; }
	@grep -E "^# (pass|fail)" $(CACHE)/cdk-test.log | tr '\n' ' ' && echo
	@mkdir -p $(CACHE)/infra/placeholder-lambda && for f in discover snapshot status copy prune report restore; do \
		mkdir -p $(CACHE)/infra/placeholder-lambda/$$f && echo placeholder > $(CACHE)/infra/placeholder-lambda/$$f/bootstrap; done
	@cd infra/cdk && $(CDK_ENV) node_modules/.bin/cdk synth --no-notices -q \
		-c artifacts=$(CACHE)/infra/placeholder-lambda -o $(CACHE)/cdk.out
	@echo "==> SAM template -> CloudFormation (SAM translator): substitutions, schedules, IAM guards, same as CDK; the vault template too"
	@SAM_CLI_TELEMETRY=0 $(INFRA_VENV)/bin/python infra/check_template.py --out $(CACHE)/infra/template.cfn.json \
		--deployed-backup $(STRONGROOM_DEPLOYED_BACKUP) --deployed-restore $(STRONGROOM_DEPLOYED_RESTORE) --cdk $(CACHE)/cdk.out/strongroom.template.json \
		--vault infra/vault-account.yaml --vault-cdk $(CACHE)/cdk.out/strongroom-vault.template.json
	@echo "==> cfn-lint on the converted SAM template, the vault template and the CDK templates"
	@$(INFRA_VENV)/bin/cfn-lint $(CACHE)/infra/template.cfn.json $(CACHE)/cdk.out/strongroom.template.json \
		infra/vault-account.yaml $(CACHE)/cdk.out/strongroom-vault.template.json
	@echo "==> checkov on all four (skips and their reasons: infra/checkov.yaml)"
	@out=$$($(CHECKOV_VENV)/bin/checkov --config-file infra/checkov.yaml \
		-f $(CACHE)/infra/template.cfn.json -f $(CACHE)/cdk.out/strongroom.template.json \
		-f infra/vault-account.yaml -f $(CACHE)/cdk.out/strongroom-vault.template.json) \
		|| { echo "$$out"; exit 1; }; echo "$$out" | grep -E "checks:"

# tests/fsimages/build.py's own check: every image it makes, read back by debugfs,
# xfs_db, ntfs-3g/ntfscat and blkid, compared with the tree's manifest (~45 s).
check-fsimages: $(FSIMAGE_STAMP)
	@echo "==> filesystem images self-check (ext4, XFS, NTFS, partitioned, signature-only)"
	@mkdir -p $(CACHE) && python3 tests/fsimages/build.py selfcheck > $(CACHE)/fsimages-selfcheck.json \
		|| { cat $(CACHE)/fsimages-selfcheck.json; exit 1; }
	@tail -n 1 $(CACHE)/fsimages-selfcheck.json

# The emulator's own patches and switchable faults, checked through boto3.
check-emulator: $(VENV_STAMP)
	@echo "==> emulator self-check (patches and faults)"
	@$(PYTHON) tests/emulator/check_faults.py
	@echo "==> emulator self-check (EBS direct APIs, patch 20)"
	@$(PYTHON) tests/emulator/check_ebs_direct.py

test: setup lint build-functions check-infra check-emulator check-fsimages
	@echo "==> cargo test (unit, property, emulator and state machine tests)"
	@mkdir -p $(CACHE)
	@$(CARGO) test --workspace 2>&1 | tee $(CACHE)/test.log
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "\ntests: %d passed, %d failed\n", p, f; if (p == 0) exit 1 }' $(CACHE)/test.log

schema:
	@STRONGROOM_BLESS=1 $(CARGO) test -p strongroom-tests --test schema --quiet

# Release binaries as Lambda deploys them (x86_64; arm64 needs the aarch64 std target).
build: setup
	@echo "==> cargo lambda build --release (LTO: a cold build takes a long while)"
	@$(CARGO) lambda build --release

bench: setup $(C7N_STAMP) build build-functions
	@$(PYTHON) bench/bench.py --functions-dir $(CARGO_TARGET_DIR)/debug \
		--lambda-dir $(CARGO_TARGET_DIR)/lambda --c7n $(C7N_VENV)/bin/custodian --out BENCHMARKS.md

# Only the 2,000-source run (issue 8): rewrites its section of BENCHMARKS.md.
bench-scale: setup build-functions
	@$(PYTHON) bench/bench.py --functions-dir $(CARGO_TARGET_DIR)/debug --only-scale --out BENCHMARKS.md

# Only the copies of 100 recovery points (issue 10): rewrites its section of BENCHMARKS.md.
bench-copies: setup build-functions
	@$(PYTHON) bench/bench.py --functions-dir $(CARGO_TARGET_DIR)/debug --only-copies --out BENCHMARKS.md

# Only the restores, one per kind (issue 11): rewrites its section of BENCHMARKS.md.
# File restores (issue 12) with coldsnap side by side: rewrites its section of BENCHMARKS.md.
# coldsnap (pinned) is built once, as a debug build like the strongroom CLI measured.
COLDSNAP_VERSION := 0.12.0
COLDSNAP := $(TOOLS)/coldsnap-$(COLDSNAP_VERSION)/bin/coldsnap
$(COLDSNAP):
	@echo "==> coldsnap $(COLDSNAP_VERSION) (cargo install --debug, for the side-by-side figure)"
	@CARGO_TARGET_DIR=$(CACHE)/target-coldsnap $(CARGO) install coldsnap --version $(COLDSNAP_VERSION) --locked --debug \
		--root $(TOOLS)/coldsnap-$(COLDSNAP_VERSION) --quiet

bench-files: setup build-functions $(COLDSNAP)
	@$(PYTHON) bench/bench.py --functions-dir $(CARGO_TARGET_DIR)/debug --only-files \
		--strongroom $(CARGO_TARGET_DIR)/debug/strongroom --coldsnap $(COLDSNAP) --out BENCHMARKS.md

bench-restores: setup build-functions
	@$(PYTHON) bench/bench.py --functions-dir $(CARGO_TARGET_DIR)/debug --only-restores --out BENCHMARKS.md

# Deploy with SAM (needs AWS credentials; never run by CI). `sam build` compiles
# the functions with cargo-lambda (release, LTO: a long while on 2 cores).
# ARCH=arm64 needs the aarch64 Rust target installed.
ARCH ?= x86_64
deploy: setup
	@if [ "$(ARCH)" = arm64 ] && ! rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu; then \
		echo "ARCH=arm64 needs the aarch64 Rust target (rustup target add aarch64-unknown-linux-gnu); use ARCH=x86_64" >&2; exit 2; fi
	@cd infra && SAM_CLI_TELEMETRY=0 $(INFRA_VENV)/bin/sam build --config-file samconfig.toml \
		--parameter-overrides Architecture=$(ARCH)
	@cd infra && SAM_CLI_TELEMETRY=0 $(INFRA_VENV)/bin/sam deploy --config-file samconfig.toml --guided \
		--parameter-overrides Architecture=$(ARCH)

clean-cache:
	rm -rf $(CACHE)
