//! `make install` and `make uninstall` with `PREFIX` and `DESTDIR` into a temporary directory,
//! without root and without building: the Makefile installs the programs already built in this
//! test's target directory. Checks the installed file list and its manifest, the units'
//! substituted paths (`PREFIX`, `SYSCONFDIR`), the configuration files (an edited one survives a
//! re-install and the uninstall), and that uninstall removes exactly what install installed, also
//! files since dropped from the source tree.

use crate::support::program;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PREFIX: &str = "/opt/owt-test";
const DAEMONS: [&str; 7] = ["owt-portal", "owt-webrtc", "owt-mixer", "owt-record", "owt-stream", "owt-sip", "owt-peer"];
const CONFIGS: [&str; 7] = ["portal", "webrtc", "mixer", "record", "stream", "sip", "peer"];
/// Built by the Makefile from npm; the test must not fetch it, so make treats it as up to date.
const APP_SOCKETIO: &str = "share/owt/app/vendor/socket.io.min.js";

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// `make <args>` in the source tree for the programs of this test's target directory, with
/// a cargo that does not exist: any attempt to build fails instead of building.
fn make(target_dir: &Path, args: &[&str]) -> Output {
    make_in(&source_dir(), target_dir, args)
}

/// [`make`] in the tree `source` (the source tree or a copy of the parts install reads).
fn make_in(source: &Path, target_dir: &Path, args: &[&str]) -> Output {
    let out_dir = program("owtctl").parent().expect("out dir").to_path_buf();
    let buildtype = out_dir.file_name().and_then(|n| n.to_str()).expect("debug or release").to_string();
    let mut cmd = Command::new("make");
    cmd.current_dir(source)
        .arg("--no-print-directory")
        .arg("-o")
        .arg(APP_SOCKETIO)
        .arg(format!("CARGO_TARGET_DIR={}", target_dir.display()))
        .arg(format!("BUILDTYPE={buildtype}"))
        .arg("CARGO=/nonexistent/cargo")
        .args(args);
    // A `make test` above this test must not hand its jobs or flags down.
    for var in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL", "DESTDIR", "PREFIX", "SYSCONFDIR"] {
        cmd.env_remove(var);
    }
    cmd.output().expect("run make")
}

fn built_target_dir() -> PathBuf {
    program("owtctl").parent().and_then(Path::parent).expect("target dir").to_path_buf()
}

#[track_caller]
fn make_ok(args: &[&str]) -> String {
    make_ok_in(&source_dir(), args)
}

#[track_caller]
fn make_ok_in(source: &Path, args: &[&str]) -> String {
    let out = make_in(source, &built_target_dir(), args);
    let text =
        format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "make {args:?} failed\n{text}");
    text
}

/// Every regular file under `root`, as paths relative to it.
fn files_under(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, into: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(root, &path, into);
            } else {
                into.insert(path.strip_prefix(root).expect("under root").to_string_lossy().into_owned());
            }
        }
    }
    let mut files = BTreeSet::new();
    walk(root, root, &mut files);
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What `make install PREFIX=/opt/owt-test` must put under DESTDIR, from the source tree.
fn expected_files() -> BTreeSet<String> {
    let src = source_dir();
    let prefix = PREFIX.trim_start_matches('/');
    let mut files = BTreeSet::new();
    for program in std::iter::once("owtctl").chain(DAEMONS) {
        files.insert(format!("{prefix}/bin/{program}"));
    }
    for daemon in DAEMONS {
        files.insert(format!("{prefix}/lib/systemd/system/{daemon}.service"));
    }
    files.insert(format!("{prefix}/lib/systemd/system/owt.target"));
    files.insert(format!("{prefix}/lib/sysusers.d/owt.conf"));
    files.insert(format!("{prefix}/lib/tmpfiles.d/owt.conf"));
    for config in CONFIGS {
        files.insert(format!("etc/owt/{config}.toml"));
    }
    for page in files_under(&src.join("man")) {
        let section = page.rsplit('.').next().expect("man page section");
        if ["1", "5", "7", "8"].contains(&section) {
            files.insert(format!("{prefix}/share/man/man{section}/{page}"));
        }
    }
    for file in files_under(&src.join("share/owt")) {
        files.insert(format!("{prefix}/share/owt/{file}"));
    }
    files.insert(format!("{prefix}/{MANIFEST}"));
    files
}

/// Where install records what it installed, under PREFIX.
const MANIFEST: &str = "share/owt/installed-files";

/// The manifest's lines: absolute paths without DESTDIR.
fn manifest(dest: &Path) -> BTreeSet<String> {
    read(&dest.join(PREFIX.trim_start_matches('/')).join(MANIFEST)).lines().map(str::to_string).collect()
}

/// `installed` (relative to DESTDIR) without the configuration files, as absolute paths.
fn without_configs(installed: &BTreeSet<String>, sysconfdir: &str) -> BTreeSet<String> {
    let configs = format!("{}/owt/", sysconfdir.trim_start_matches('/'));
    installed.iter().filter(|f| !f.starts_with(&configs)).map(|f| format!("/{f}")).collect()
}

#[test]
fn install_and_uninstall_into_destdir() {
    let src = source_dir();
    let dest = tempfile::tempdir().expect("tempdir");
    let destdir = format!("DESTDIR={}", dest.path().display());
    let prefix = format!("PREFIX={PREFIX}");
    let root = |path: &str| dest.path().join(path.trim_start_matches('/'));

    make_ok(&["install", &prefix, &destdir]);
    let installed = files_under(dest.path());
    let expected = expected_files();
    assert_eq!(
        installed,
        expected,
        "installed file list\nmissing: {:?}\nunexpected: {:?}",
        expected.difference(&installed).collect::<Vec<_>>(),
        installed.difference(&expected).collect::<Vec<_>>()
    );
    assert_eq!(manifest(dest.path()), without_configs(&installed, "/etc"), "the manifest lists what was installed");

    // Programs: executable, and they run from where they were installed.
    for name in std::iter::once("owtctl").chain(DAEMONS) {
        let path = root(&format!("{PREFIX}/bin/{name}"));
        let mode = std::fs::metadata(&path).expect("installed program").permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "{}", path.display());
        let help = Command::new(&path).arg("--help").output().expect("run the installed program");
        assert!(help.status.success() && !help.stdout.is_empty(), "{name} --help: {help:?}");
    }
    // Units start the programs where this PREFIX put them.
    for daemon in DAEMONS {
        let unit = read(&root(&format!("{PREFIX}/lib/systemd/system/{daemon}.service")));
        assert!(!unit.contains("@bindir@"), "{daemon}.service keeps a placeholder:\n{unit}");
        let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).expect("ExecStart");
        assert_eq!(exec, format!("ExecStart={PREFIX}/bin/{daemon} --config-dir /etc/owt"), "{daemon}.service");
        let source = read(&src.join(format!("units/{daemon}.service.in")));
        let expected = source.replace("@bindir@", &format!("{PREFIX}/bin")).replace("@sysconfdir@", "/etc");
        assert_eq!(unit, expected, "{daemon}.service");
    }
    for (installed, source) in [
        ("lib/systemd/system/owt.target", "units/owt.target"),
        ("lib/sysusers.d/owt.conf", "units/owt.sysusers.conf"),
        ("lib/tmpfiles.d/owt.conf", "units/owt.tmpfiles.conf"),
        ("share/man/man5/owt.toml.5", "man/owt.toml.5"),
        ("share/man/man1/owtctl.1", "man/owtctl.1"),
        ("share/owt/app/index.html", "share/owt/app/index.html"),
    ] {
        assert_eq!(read(&root(&format!("{PREFIX}/{installed}"))), read(&src.join(source)), "{installed}");
    }
    // Configuration: the shipped files, with the sample application's files at this PREFIX.
    for config in CONFIGS {
        let text = read(&root(&format!("etc/owt/{config}.toml")));
        if config != "portal" {
            assert_eq!(text, read(&src.join(format!("etc/owt/{config}.toml"))), "{config}.toml");
        }
    }
    let etc = root("etc/owt");
    let (portal, _) = owt_config::load::<owt_config::PortalConfig>(&etc, None).expect("installed portal.toml is valid");
    assert_eq!(portal.app.share_dir, Path::new(PREFIX).join("share/owt/app"));
    assert!(root(&format!("{PREFIX}/share/owt/app/index.html")).exists());

    // A re-install keeps an edited configuration file and restores a deleted one.
    let portal_toml = etc.join("portal.toml");
    let edited = format!("{}\n[log]\nlevel = \"debug\"\n", read(&portal_toml));
    std::fs::write(&portal_toml, &edited).unwrap();
    std::fs::remove_file(etc.join("peer.toml")).unwrap();
    std::fs::remove_file(root(&format!("{PREFIX}/bin/owt-sip"))).unwrap();
    make_ok(&["install", &prefix, &destdir]);
    assert_eq!(read(&portal_toml), edited, "re-install overwrote an edited portal.toml");
    assert_eq!(read(&etc.join("peer.toml")), read(&src.join("etc/owt/peer.toml")));
    assert_eq!(files_under(dest.path()), expected, "re-install gives the same file list");

    // Uninstall removes everything but the configuration, which keeps its edit.
    let said = make_ok(&["uninstall", &prefix, &destdir]);
    assert!(said.contains("kept"), "{said}");
    let left = files_under(dest.path());
    let configs: BTreeSet<String> = CONFIGS.iter().map(|c| format!("etc/owt/{c}.toml")).collect();
    assert_eq!(left, configs, "uninstall leaves only the configuration");
    assert_eq!(read(&portal_toml), edited);
}

#[test]
fn non_default_sysconfdir_is_where_configuration_goes_and_units_look() {
    let dest = tempfile::tempdir().expect("tempdir");
    let sysconfdir = format!("{PREFIX}/etc");
    let args =
        [format!("PREFIX={PREFIX}"), format!("DESTDIR={}", dest.path().display()), format!("SYSCONFDIR={sysconfdir}")];
    let install: Vec<&str> = std::iter::once("install").chain(args.iter().map(String::as_str)).collect();
    let uninstall: Vec<&str> = std::iter::once("uninstall").chain(args.iter().map(String::as_str)).collect();
    let root = |path: &str| dest.path().join(path.trim_start_matches('/'));

    make_ok(&install);
    for daemon in DAEMONS {
        let unit = read(&root(&format!("{PREFIX}/lib/systemd/system/{daemon}.service")));
        let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).expect("ExecStart");
        assert_eq!(exec, format!("ExecStart={PREFIX}/bin/{daemon} --config-dir {sysconfdir}/owt"), "{daemon}.service");
        assert!(!unit.contains(" /etc/owt") && !unit.contains("@sysconfdir@"), "{daemon}.service:\n{unit}");
    }
    let installed = files_under(dest.path());
    for config in CONFIGS {
        assert!(installed.contains(&format!("{}/owt/{config}.toml", sysconfdir.trim_start_matches('/'))), "{config}");
    }
    assert!(!root("etc").exists(), "nothing under the default /etc: {installed:?}");
    let (portal, _) = owt_config::load::<owt_config::PortalConfig>(&root(&format!("{sysconfdir}/owt")), None)
        .expect("installed portal.toml is valid");
    assert_eq!(portal.app.share_dir, Path::new(PREFIX).join("share/owt/app"));
    assert_eq!(manifest(dest.path()), without_configs(&installed, &sysconfdir));

    let said = make_ok(&uninstall);
    assert!(said.contains(&format!("{sysconfdir}/owt")), "{said}");
    let configs: BTreeSet<String> =
        CONFIGS.iter().map(|c| format!("{}/owt/{c}.toml", sysconfdir.trim_start_matches('/'))).collect();
    assert_eq!(files_under(dest.path()), configs, "uninstall leaves only the configuration");
}

/// A copy of what `make install` reads from the source tree, to change its man pages.
fn copy_of_install_sources() -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("tempdir");
    let src = source_dir();
    std::fs::create_dir_all(copy.path().join("tests/js")).unwrap();
    for part in ["Makefile", "Cargo.toml", "units", "etc", "share", "man", "tests/js/package-lock.json"] {
        let to = copy.path().join(part);
        let status = Command::new("cp").arg("-r").arg(src.join(part)).arg(&to).status().expect("cp");
        assert!(status.success(), "cp -r {part}");
    }
    copy
}

#[test]
fn uninstall_removes_exactly_what_was_installed_even_pages_dropped_since() {
    let tree = copy_of_install_sources();
    let dest = tempfile::tempdir().expect("tempdir");
    let args = [format!("PREFIX={PREFIX}"), format!("DESTDIR={}", dest.path().display())];
    let install: Vec<&str> = std::iter::once("install").chain(args.iter().map(String::as_str)).collect();
    let uninstall: Vec<&str> = std::iter::once("uninstall").chain(args.iter().map(String::as_str)).collect();
    let man8 = dest.path().join(PREFIX.trim_start_matches('/')).join("share/man/man8");

    // A page the tree has at the first install and drops before the second.
    let dropped = tree.path().join("man/owt-dropped.8");
    std::fs::copy(tree.path().join("man/owt-portal.8"), &dropped).unwrap();
    make_ok_in(tree.path(), &install);
    assert!(man8.join("owt-dropped.8").exists());
    assert!(manifest(dest.path()).contains(&format!("{PREFIX}/share/man/man8/owt-dropped.8")));
    std::fs::remove_file(&dropped).unwrap();
    make_ok_in(tree.path(), &install);
    assert!(
        manifest(dest.path()).contains(&format!("{PREFIX}/share/man/man8/owt-dropped.8")),
        "a re-install keeps what earlier installs put in place in the manifest"
    );
    // Someone else's page next to ours.
    std::fs::write(man8.join("other.8"), ".TH OTHER 8\n").unwrap();

    make_ok_in(tree.path(), &uninstall);
    let left = files_under(dest.path());
    let prefix = PREFIX.trim_start_matches('/');
    let mut expected: BTreeSet<String> = CONFIGS.iter().map(|c| format!("etc/owt/{c}.toml")).collect();
    expected.insert(format!("{prefix}/share/man/man8/other.8"));
    assert_eq!(left, expected, "uninstall removed the dropped page and nothing that it did not install");
}

#[test]
fn install_without_built_programs_or_cargo_fails_clearly() {
    let empty_target = tempfile::tempdir().expect("tempdir");
    let dest = tempfile::tempdir().expect("tempdir");
    let out = make(
        empty_target.path(),
        &["install", &format!("PREFIX={PREFIX}"), &format!("DESTDIR={}", dest.path().display())],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "install without programs succeeded: {stdout}");
    assert!(stdout.contains("is missing") && stdout.contains("make build"), "{stdout}");
    assert!(files_under(dest.path()).is_empty(), "nothing installed: {:?}", files_under(dest.path()));
}
