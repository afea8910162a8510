# owt-rs: build, test, run and install. `make help` lists the targets.

PREFIX     ?= /usr/local
DESTDIR    ?=
SYSCONFDIR ?= /etc
BUILDTYPE  ?= debug
CARGO      ?= cargo

BINDIR     := $(PREFIX)/bin
SHAREDIR   := $(PREFIX)/share/owt
MANDIR     := $(PREFIX)/share/man
UNITDIR    := $(PREFIX)/lib/systemd/system
SYSUSERSDIR:= $(PREFIX)/lib/sysusers.d
TMPFILESDIR:= $(PREFIX)/lib/tmpfiles.d
# Every file `make install` put in place except the configuration, one path (without DESTDIR) a
# line; `make uninstall` removes exactly these, so files since dropped from the tree go too.
MANIFEST   := $(SHAREDIR)/installed-files
# Shell commands printing the files (without DESTDIR) this tree installs, configuration aside.
LIST_INSTALLED = for p in $(PROGRAMS); do echo $(BINDIR)/$$p; done; \
  for d in $(DAEMONS); do echo $(UNITDIR)/$$d.service; done; \
  echo $(UNITDIR)/owt.target; echo $(SYSUSERSDIR)/owt.conf; echo $(TMPFILESDIR)/owt.conf; \
  for f in man/*.[1578]; do echo $(MANDIR)/man$${f\#\#*.}/$${f\#man/}; done; \
  (cd share/owt && find . -type f -o -type l) | sed 's|^\.|$(SHAREDIR)|'

DAEMONS    := owt-portal owt-webrtc owt-mixer owt-record owt-stream owt-sip owt-peer
PROGRAMS   := owtctl $(DAEMONS)
CONFIGS    := portal webrtc mixer record stream sip peer

TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
ifeq ($(BUILDTYPE),release)
CARGO_PROFILE := --release
OUT := $(TARGET_DIR)/release
else
CARGO_PROFILE :=
OUT := $(TARGET_DIR)/debug
endif

# Debian packages the build and the tests need. owt-codec: FFmpeg 5.1's headers and libraries
# (ffmpeg-sys-next generates its bindings with libclang) and nasm for openh264's assembly.
DEB_PACKAGES := pkg-config libssl-dev libsystemd-dev systemd groff-base \
  libclang-dev nasm libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
# Debian packages only the tests need: Socket.IO clients from npm run on node, WebRTC peers in Chromium,
# nftables to drop packets in the loss test's network namespace (ethtool to make its loopback segment
# UDP GSO sends, so the loss hits datagrams as on a wire), python3 for the tests/e2e drivers,
# iproute2 (ip link) for the browser tests' network namespaces.
TEST_DEB_PACKAGES := nodejs npm chromium nftables ethtool python3 iproute2 \
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav \
  gstreamer1.0-nice python3-gi gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0
# Debian packages only the benchmarks need: Janus (the reference SFU), curl, ip (veth) for
# bench-sfu; ffmpeg (the reference mixer) and GNU time for bench-mix.
BENCH_DEB_PACKAGES := janus curl iproute2 ffmpeg time
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The oldest Rust that builds the workspace (Cargo.toml's rust-version).
RUST_VERSION := $(shell sed -n 's/^rust-version *= *"\([0-9.]*\)"/\1/p' Cargo.toml)

RUN_DIR := $(CURDIR)/run

# The socket.io browser client the sample application serves as /socket.io.js
# (share/owt/app/vendor/ is not in git: it comes from npm's socket.io-client, at the version
# tests/js/package-lock.json pins).
APP_SOCKETIO := share/owt/app/vendor/socket.io.min.js
SOCKETIO_CLIENT_VERSION := $(shell sed -n '/"node_modules\/socket.io-client"/{n;s/.*"version": *"\([^"]*\)".*/\1/p;}' tests/js/package-lock.json)

.PHONY: help all deps rust-toolchain app-deps test-deps build test unit-test vendor-test lint fmt man man-check units-check run install uninstall bench bench-peer bench-join bench-deps bench-sfu bench-mix clean

all: build

help:
	@echo "make run        set up and run the whole server in the foreground (state in ./run)"
	@echo "make test       install what the tests need, then lint and run every test"
	@echo "make build      build all programs (BUILDTYPE=debug|release)"
	@echo "make install    install programs, units, config, man pages (PREFIX, DESTDIR)"
	@echo "make uninstall  remove what install installed (configuration is kept)"
	@echo "make man        regenerate man/*.1 and man/owt-*.8 from the clap definitions"
	@echo "make deps       install missing Debian build packages, check the Rust toolchain"
	@echo "make bench      benchmarks side by side with references: bench-peer, bench-join, bench-sfu, bench-mix (bench/*.json)"
	@echo "make lint       cargo fmt --check and clippy -D warnings"
	@echo "make vendor-test  unit tests of the patched crates in lib/vendor"

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi
	@$(MAKE) --no-print-directory rust-toolchain

# Rust >= RUST_VERSION with rustfmt and clippy. rustup installs or updates the stable toolchain
# when it is there; without rustup (Debian 12's cargo is too old) the message says what to do.
rust-toolchain:
	@need="$(RUST_VERSION)"; \
	fit() { have=$$($(CARGO) --version 2>/dev/null | cut -d' ' -f2 | cut -d- -f1); \
	  [ -n "$$have" ] && [ "$$(printf '%s\n%s\n' "$$need" "$$have" | sort -V | head -n1)" = "$$need" ] && \
	  $(CARGO) fmt --version >/dev/null 2>&1 && $(CARGO) clippy --version >/dev/null 2>&1; }; \
	fit && exit 0; \
	found=$$($(CARGO) --version 2>/dev/null || echo "no cargo on PATH"); \
	if command -v rustup >/dev/null 2>&1; then \
	  echo "Rust $$need or newer with rustfmt and clippy is needed ($$found): installing the stable toolchain with rustup"; \
	  rustup toolchain install stable --profile minimal --component rustfmt,clippy && \
	  rustup component add rustfmt clippy || exit 1; \
	  fit && exit 0; \
	  echo "rustup's active toolchain is still not Rust $$need with rustfmt and clippy ($$($(CARGO) --version 2>&1)):"; \
	  echo "run 'rustup default stable' (or remove the rustup override of this directory) and retry"; exit 1; \
	fi; \
	echo "Rust $$need or newer with rustfmt and clippy is needed; found: $$found."; \
	echo "Install rustup and the stable toolchain as the user who builds (not root):"; \
	echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy"; \
	echo "then open a new shell (or run: . \"\$$HOME/.cargo/env\") and run make again."; \
	exit 1

# The sample application's socket.io client needs npm only, not the test dependencies.
app-deps:
	@command -v npm >/dev/null 2>&1 || { echo "installing Debian packages: npm"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q npm; }

build: deps $(APP_SOCKETIO)
	$(CARGO) build $(CARGO_PROFILE) --workspace --bins

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# npm packages of tests/js (socket.io-client 2/3/4, socket.io, playwright-core) go to
# tests/js/node_modules. A package counts as present when dpkg has it or its command is on
# PATH: nodesource's nodejs brings npm and conflicts with Debian's npm package.
test-deps:
	@missing=""; for p in $(TEST_DEB_PACKAGES); do \
	  case $$p in nodejs) c=node;; nftables) c=nft;; iproute2) c=ip;; *) c=$$p;; esac; \
	  command -v $$c >/dev/null 2>&1 || dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi
	@if [ ! -d tests/js/node_modules ] || [ tests/js/package-lock.json -nt tests/js/node_modules ]; then \
	  npm ci --prefix tests/js --no-audit --no-fund && touch tests/js/node_modules; \
	fi

# The tests, their daemons and their browsers put temporary files (Chromium profiles, bus
# sockets of killed daemons, ...) in TMPDIR: one of their own, removed afterwards.
unit-test: build test-deps
	@tmp=$$(mktemp -d /tmp/owt-test.XXXXXX) && \
	  TMPDIR=$$tmp $(CARGO) test $(CARGO_PROFILE) --workspace; status=$$?; rm -rf $$tmp; exit $$status

# The unit tests of the vendored crates we changed (lib/vendor/README.md), each in its own folder
# (they are outside the workspace) with its pinned Cargo.lock, in a target directory of their own.
VENDOR_TESTED := rtc-dtls rtc-ice rtc-interceptor rtc-srtp rtc webrtc
vendor-test: deps
	@for c in $(VENDOR_TESTED); do \
	  echo "unit tests of lib/vendor/$$c"; \
	  (cd lib/vendor/$$c && CARGO_TARGET_DIR=$(abspath $(TARGET_DIR))/vendor $(CARGO) test -q --locked --lib) || exit 1; \
	done

units-check: deps
	sh units/verify.sh

man-check: build
	@tmp=$$(mktemp -d); $(CARGO) run -q $(CARGO_PROFILE) -p owt-mangen -- $$tmp && \
	  for f in $$tmp/*; do cmp -s $$f man/$$(basename $$f) || { echo "man/$$(basename $$f) is stale: run make man"; rm -rf $$tmp; exit 1; }; done; \
	  for f in man/owtctl*.1 man/owt-*.8; do [ -e $$tmp/$$(basename $$f) ] || { echo "$$f is no longer generated: run make man and git rm it"; rm -rf $$tmp; exit 1; }; done; \
	  rm -rf $$tmp; echo "man pages up to date"
	@for f in man/*.[1578]; do groff -man -Tutf8 -ww $$f >/dev/null 2>$(RUN_DIR).groff.log; \
	  if [ -s $(RUN_DIR).groff.log ]; then echo "$$f:"; cat $(RUN_DIR).groff.log; rm -f $(RUN_DIR).groff.log; exit 1; fi; done; \
	  rm -f $(RUN_DIR).groff.log; echo "man pages render cleanly"

test: deps lint unit-test vendor-test units-check man-check

man: build
	rm -f man/owtctl*.1 man/owt-*.8
	$(CARGO) run -q $(CARGO_PROFILE) -p owt-mangen -- man

# Runs everything on this machine without systemd: configuration in run/etc (the embedded
# defaults with the state directory moved to run/state and listeners on loopback).
# The copy in tests/js/node_modules when test-deps put the pinned version there, else the file
# of the pinned package fetched alone with `npm pack` (no test dependencies).
$(APP_SOCKETIO): tests/js/package-lock.json
	@if [ -f tests/js/node_modules/socket.io-client/dist/socket.io.min.js ] && \
	    grep -q '"version": "$(SOCKETIO_CLIENT_VERSION)"' tests/js/node_modules/socket.io-client/package.json; then \
	  install -D -m 0644 tests/js/node_modules/socket.io-client/dist/socket.io.min.js $@; \
	else \
	  $(MAKE) --no-print-directory app-deps && tmp=$$(mktemp -d) && \
	  echo "fetching socket.io-client $(SOCKETIO_CLIENT_VERSION) with npm pack" && \
	  (cd $$tmp && npm pack -q --no-fund --no-audit socket.io-client@$(SOCKETIO_CLIENT_VERSION) >/dev/null && \
	    tar xzf socket.io-client-$(SOCKETIO_CLIENT_VERSION).tgz package/dist/socket.io.min.js) && \
	  install -D -m 0644 $$tmp/package/dist/socket.io.min.js $@; status=$$?; rm -rf $$tmp; exit $$status; \
	fi

run: build $(APP_SOCKETIO)
	@mkdir -p $(RUN_DIR)/etc $(RUN_DIR)/state
	@[ -f $(RUN_DIR)/etc/portal.toml ] || printf '[state]\ndir = "%s"\n\n[management-api]\nip_address = "127.0.0.1"\n\n[portal]\nip_address = "127.0.0.1"\n\n[app]\nip_address = "127.0.0.1"\nshare_dir = "%s"\n' "$(RUN_DIR)/state" "$(CURDIR)/share/owt/app" > $(RUN_DIR)/etc/portal.toml
	@$(OUT)/owtctl --config-dir $(RUN_DIR)/etc init --print-credentials
	@echo
	@echo "REST API:   http://127.0.0.1:3000/v1/rooms   (MAuth with the super service above)"
	@echo "signaling:  http://127.0.0.1:8080/           (Socket.IO, OWT client protocol 1.2)"
	@echo "sample app: http://127.0.0.1:3004/           (?room=ROOM_ID, ?forward=true, ?publish=false, ?user=NAME)"
	@echo "try:       $(OUT)/owtctl --config-dir $(RUN_DIR)/etc room list"
	@echo "stop with Ctrl-C"
	@echo
	@trap 'kill $$(jobs -p) 2>/dev/null; wait' INT TERM EXIT; \
	for d in $(DAEMONS); do $(OUT)/$$d --config-dir $(RUN_DIR)/etc & done; wait

# Installs what `make build` built (same BUILDTYPE and CARGO_TARGET_DIR); builds only when a
# program is missing, so `sudo make install` needs no cargo on root's PATH.
install: $(APP_SOCKETIO)
	@for p in $(PROGRAMS); do [ -x $(OUT)/$$p ] && continue; \
	  if command -v $(CARGO) >/dev/null 2>&1; then $(MAKE) --no-print-directory build && break; fi; \
	  echo "$(OUT)/$$p is missing and $(CARGO) is not on PATH: run 'make build' as yourself first, then"; \
	  echo "'sudo make install' with the same BUILDTYPE and CARGO_TARGET_DIR=... on its command line"; exit 1; \
	done
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
	  $(DESTDIR)$(SYSCONFDIR)/owt $(DESTDIR)$(SHAREDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8
	for p in $(PROGRAMS); do install -m 0755 $(OUT)/$$p $(DESTDIR)$(BINDIR)/$$p; done
	for d in $(DAEMONS); do sed 's|@bindir@|$(BINDIR)|g; s|@sysconfdir@|$(SYSCONFDIR)|g' units/$$d.service.in \
	  > $(DESTDIR)$(UNITDIR)/$$d.service; \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$$d.service; done
	install -m 0644 units/owt.target $(DESTDIR)$(UNITDIR)/owt.target
	install -m 0644 units/owt.sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/owt.conf
	install -m 0644 units/owt.tmpfiles.conf $(DESTDIR)$(TMPFILESDIR)/owt.conf
	# The sample application's files are where this PREFIX puts them (the embedded default is /usr/local).
	for c in $(CONFIGS); do [ -e $(DESTDIR)$(SYSCONFDIR)/owt/$$c.toml ] || { \
	  sed 's|^# share_dir = "/usr/local/share/owt/app"|$(if $(filter /usr/local,$(PREFIX)),# ,)share_dir = "$(SHAREDIR)/app"|' \
	    etc/owt/$$c.toml > $(DESTDIR)$(SYSCONFDIR)/owt/$$c.toml && chmod 0644 $(DESTDIR)$(SYSCONFDIR)/owt/$$c.toml; }; done
	cp -r share/owt/. $(DESTDIR)$(SHAREDIR)/
	install -m 0644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 man/*.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 man/*.7 $(DESTDIR)$(MANDIR)/man7/
	install -m 0644 man/*.8 $(DESTDIR)$(MANDIR)/man8/
	# The manifest keeps what earlier installs listed: a re-install does not forget their files.
	{ $(LIST_INSTALLED); echo $(MANIFEST); \
	  if [ -f $(DESTDIR)$(MANIFEST) ]; then cat $(DESTDIR)$(MANIFEST); fi; \
	} | sort -u > $(DESTDIR)$(MANIFEST).new && mv $(DESTDIR)$(MANIFEST).new $(DESTDIR)$(MANIFEST)
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
	  systemd-sysusers && systemd-tmpfiles --create $(TMPFILESDIR)/owt.conf && systemctl daemon-reload; \
	  echo "installed; next: owtctl init && systemctl enable --now owt.target"; fi

uninstall:
	{ if [ -f $(DESTDIR)$(MANIFEST) ]; then cat $(DESTDIR)$(MANIFEST); else \
	  echo "no $(DESTDIR)$(MANIFEST) (installed before it existed): removing what this tree installs" >&2; \
	  $(LIST_INSTALLED); fi; } | while IFS= read -r f; do rm -f "$(DESTDIR)$$f"; done
	rm -rf $(DESTDIR)$(SHAREDIR)
	@echo "configuration in $(DESTDIR)$(SYSCONFDIR)/owt and state in /var/lib/owt are kept"

bench: bench-peer bench-join bench-sfu bench-mix

# owt-peer against a minimal Node.js relay on npm socket.io 4, 1000 clients; prints a table
# and writes bench/peer.json.
bench-peer: deps test-deps
	$(CARGO) build --release -p owt-peer
	node tests/js/bench-peer.js $(TARGET_DIR)/release/owt-peer --out bench/peer.json

# 200 Socket.IO clients log in to one room at once: owt-portal against a Node.js socket.io 4
# server answering login blindly; prints a table and writes bench/join.json.
bench-join: deps test-deps
	$(CARGO) build --release -p owt-portal -p owtctl
	tests/bench/join-latency.sh 200 $(TARGET_DIR)/release

bench-deps:
	@missing=""; for p in $(BENCH_DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

# The same WebRTC loads (owt-loadgen: 1x10, 2x25 then 4x50 subscribers, 15 s each) against owt-rs
# and Janus 1.1.2 videoroom, each in its own `unshare -n` namespace (root); prints a table
# with the owt/Janus ratios and writes bench/sfu.json.
bench-sfu: deps bench-deps
	$(CARGO) build --release -p owt-portal -p owt-webrtc -p owtctl -p owt-loadgen
	$(SUDO) bash tests/bench/sfu.sh $(TARGET_DIR)/release bench/sfu.json

# MCU video mixing, 4 and 9 VP8 640x480 inputs into 1280x720 30 fps VP8: owt-codec (its example
# mixbench: decode, compose on the fluid layout, encode) against ffmpeg (scale+pad, xstack,
# libvpx with owt-codec's settings) on the same clips; prints CPU per mixed frame with the
# owt/ffmpeg ratios and writes bench/mix.json.
bench-mix: deps bench-deps
	$(CARGO) build --release -p owt-codec --example mixbench
	bash tests/bench/mix.sh $(TARGET_DIR)/release/examples/mixbench bench/mix.json

clean:
	$(CARGO) clean
	rm -rf $(RUN_DIR)
