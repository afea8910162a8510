//! The owtctl command against a real owt-portal and state directory: service, room and token
//! commands (JSON and table output, JSON/TOML option files), exit codes, `init`
//! idempotence, certificate generation/import/show, token key rotation, and HTTPS.

use crate::support::{command, decode_token, expect_exit, free_port, json_ok, stdout_ok, Auth, Options, TestServer};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::symm::Cipher;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509NameBuilder, X509};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn text(out: &std::process::Output) -> String {
    format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// A self-signed certificate for `cn` and its key.
fn self_signed(cn: &str) -> (X509, PKey<Private>) {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    name.append_entry_by_text("O", "owt-tests").unwrap();
    let name = name.build();
    let mut builder = X509::builder().unwrap();
    builder.set_version(2).unwrap();
    builder.set_subject_name(&name).unwrap();
    builder.set_issuer_name(&name).unwrap();
    builder.set_pubkey(&key).unwrap();
    builder.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    builder.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
    let san = SubjectAlternativeName::new().dns(cn).build(&builder.x509v3_context(None, None)).unwrap();
    builder.append_extension(san).unwrap();
    builder.sign(&key, MessageDigest::sha256()).unwrap();
    (builder.build(), key)
}

fn cert_show(server: &TestServer) -> Value {
    json_ok(&server.owtctl(&["cert", "show", "--json"]))
}

// ---- services, rooms, tokens ------------------------------------------------------------

#[test]
fn service_commands() {
    let server = TestServer::start();
    let list = json_ok(&server.owtctl_url(&["service", "list", "--json"]));
    let list = list.as_array().expect("service list is an array");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["_id"], json!(server.super_id));

    let created = json_ok(&server.owtctl_url(&["service", "create", "s1", "--json"]));
    assert_eq!(created["name"], json!("s1"));
    let id = created["_id"].as_str().expect("_id").to_string();
    let key = created["key"].as_str().expect("key").to_string();
    assert!(!key.is_empty());
    let with_key = json_ok(&server.owtctl_url(&["service", "create", "s2", "--key", "given-key", "--json"]));
    assert_eq!(with_key["key"], json!("given-key"));

    let shown = json_ok(&server.owtctl_url(&["service", "show", &id, "--json"]));
    assert_eq!(shown["_id"], json!(id));
    assert_eq!(shown["name"], json!("s1"));
    let human = stdout_ok(&server.owtctl_url(&["service", "list"]));
    let header = human.lines().next().unwrap_or_default();
    assert!(header.starts_with("ID"), "{human}");
    assert!(human.contains("s1") && human.contains("superService"), "{human}");
    // The created credentials work with the REST API.
    let reply = server.call("GET", &format!("/services/{id}"), None, Auth::Service(id.clone(), key));
    assert_eq!(reply.ok_json()["name"], json!("s1"));

    // Duplicate name: refused as invalid.
    expect_exit(&server.owtctl_url(&["service", "create", "s1"]), 6);

    let out = server.owtctl_url(&["service", "delete", &id]);
    assert!(stdout_ok(&out).contains(&id), "{}", text(&out));
    expect_exit(&server.owtctl_url(&["service", "show", &id]), 3);
    let list = json_ok(&server.owtctl_url(&["service", "list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 2);
    // A normal service may not list services: permission refused.
    let app = with_key["_id"].as_str().unwrap();
    expect_exit(&server.owtctl_url(&["--service-id", app, "--service-key", "given-key", "service", "list"]), 4);
}

#[test]
fn room_commands() {
    let server = TestServer::start();
    let r1 = json_ok(&server.owtctl_url(&["room", "create", "r1", "--input-limit", "4", "--json"]));
    assert_eq!(r1["name"], json!("r1"));
    assert_eq!(r1["inputLimit"], json!(4));
    assert_eq!(r1["views"][0]["label"], json!("common"));
    let r1_id = r1["_id"].as_str().unwrap().to_string();

    let json_file = server.path().join("f.json");
    std::fs::write(&json_file, r#"{"participantLimit": 3, "views": [{"label": "v1", "video": {"maxInput": 4}}]}"#)
        .unwrap();
    let json_file = json_file.to_str().unwrap();
    let r2 = json_ok(&server.owtctl_url(&["room", "create", "r2", "--file", json_file, "--json"]));
    assert_eq!(r2["participantLimit"], json!(3));
    assert_eq!(r2["views"].as_array().unwrap().len(), 1);
    assert_eq!(r2["views"][0]["label"], json!("v1"));
    assert_eq!(r2["views"][0]["video"]["maxInput"], json!(4));
    // Flags win over the file.
    let r2b = json_ok(&server.owtctl_url(&[
        "room",
        "create",
        "r2b",
        "--file",
        json_file,
        "--participant-limit",
        "8",
        "--json",
    ]));
    assert_eq!(r2b["participantLimit"], json!(8));
    assert_eq!(r2b["views"][0]["label"], json!("v1"));

    let toml_file = server.path().join("f.toml");
    std::fs::write(
        &toml_file,
        "inputLimit = 5\n\n[[views]]\nlabel = \"v1\"\n\n[[views]]\nlabel = \"v2\"\n[views.video]\nmaxInput = 9\n\
         [views.video.layout]\nfitPolicy = \"crop\"\n",
    )
    .unwrap();
    let r3 = json_ok(&server.owtctl_url(&["room", "create", "r3", "--file", toml_file.to_str().unwrap(), "--json"]));
    assert_eq!(r3["inputLimit"], json!(5));
    let labels: Vec<&Value> = r3["views"].as_array().unwrap().iter().map(|v| &v["label"]).collect();
    assert_eq!(labels, [&json!("v1"), &json!("v2")]);
    assert_eq!(r3["views"][1]["video"]["maxInput"], json!(9));
    assert_eq!(r3["views"][1]["video"]["layout"]["fitPolicy"], json!("crop"));
    assert_eq!(r3["views"][0]["video"]["maxInput"], json!(16));

    let no_views = json_ok(&server.owtctl_url(&["room", "create", "r4", "--no-views", "--json"]));
    assert_eq!(no_views["views"], json!([]));

    let updated = json_ok(&server.owtctl_url(&["room", "update", &r1_id, "--participant-limit", "9", "--json"]));
    assert_eq!(updated["participantLimit"], json!(9));
    assert_eq!(updated["inputLimit"], json!(4), "other settings kept");
    let renamed = json_ok(&server.owtctl_url(&["room", "update", &r1_id, "--name", "r1-renamed", "--json"]));
    assert_eq!(renamed["name"], json!("r1-renamed"));
    let shown = json_ok(&server.owtctl_url(&["room", "show", &r1_id, "--json"]));
    assert_eq!(shown, renamed);
    assert_eq!(shown, server.get(&format!("/v1/rooms/{r1_id}")), "owtctl shows what the API has");
    let pretty = stdout_ok(&server.owtctl_url(&["room", "show", &r1_id]));
    assert_eq!(serde_json::from_str::<Value>(&pretty).unwrap(), shown, "human show is pretty JSON");
    expect_exit(&server.owtctl_url(&["room", "update", &r1_id]), 6);
    expect_exit(&server.owtctl_url(&["room", "update", &r1_id, "--input-limit", "-3"]), 6);
    assert_eq!(server.get(&format!("/v1/rooms/{r1_id}"))["inputLimit"], json!(4));

    let table = stdout_ok(&server.owtctl_url(&["room", "list"]));
    let mut lines = table.lines();
    assert!(lines.next().unwrap_or_default().starts_with("ID"), "{table}");
    assert_eq!(lines.count(), 6, "one line per room: {table}");
    assert!(table.contains(&r1_id) && table.contains("r1-renamed") && table.contains("sampleRoom"), "{table}");
    let list = json_ok(&server.owtctl_url(&["room", "list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 6);
    let page = json_ok(&server.owtctl_url(&["room", "list", "--per-page", "2", "--page", "3", "--json"]));
    assert_eq!(page.as_array().unwrap().len(), 2);
    assert_eq!(page[0], list[4]);

    let out = server.owtctl_url(&["room", "delete", &r1_id]);
    assert!(stdout_ok(&out).contains(&r1_id), "{}", text(&out));
    expect_exit(&server.owtctl_url(&["room", "show", &r1_id]), 3);
    expect_exit(&server.owtctl_url(&["room", "delete", &r1_id]), 3);
    assert_eq!(json_ok(&server.owtctl_url(&["room", "list", "--json"])).as_array().unwrap().len(), 5);
    // Files that are not room options.
    let bad = server.path().join("bad.json");
    std::fs::write(&bad, "[1, 2]").unwrap();
    expect_exit(&server.owtctl_url(&["room", "create", "x", "--file", bad.to_str().unwrap()]), 6);
    std::fs::write(&bad, "{oops").unwrap();
    expect_exit(&server.owtctl_url(&["room", "create", "x", "--file", bad.to_str().unwrap()]), 6);
    let missing = server.path().join("missing.json");
    expect_exit(&server.owtctl_url(&["room", "create", "x", "--file", missing.to_str().unwrap()]), 1);
    assert_eq!(json_ok(&server.owtctl_url(&["room", "list", "--json"])).as_array().unwrap().len(), 5);
}

#[test]
fn token_create_and_rotate_key() {
    let server = TestServer::start();
    let room = server.default_room.clone();
    let out = server.owtctl_url(&["token", "create", &room, "--user", "u", "--role", "presenter"]);
    let token_text = stdout_ok(&out).trim().to_string();
    let decoded = decode_token(&token_text);
    assert_eq!(decoded["host"], json!(server.token_host()));
    let token = owt_auth::Token::decode(&token_text).expect("token decodes");
    let old_key = server.token_key();
    assert!(token.verify(&old_key));

    let as_json = json_ok(&server.owtctl_url(&["token", "create", &room, "--user", "u", "--json"]));
    let json_token = owt_auth::Token::decode(as_json["token"].as_str().expect("token member")).unwrap();
    assert!(json_token.verify(&old_key));
    let with_pref = server.owtctl_url(&["token", "create", &room, "--user", "u", "--isp", "i", "--region", "r"]);
    assert!(owt_auth::Token::decode(stdout_ok(&with_pref).trim()).unwrap().verify(&old_key));
    expect_exit(&server.owtctl_url(&["token", "create", &room, "--user", "u", "--role", "nobody"]), 6);
    expect_exit(&server.owtctl_url(&["token", "create", "0123456789abcdef01234567", "--user", "u"]), 3);

    stdout_ok(&server.owtctl(&["token", "rotate-key"]));
    let new_key = server.token_key();
    assert_ne!(new_key, old_key);
    assert!(!token.verify(&new_key), "a token issued before the rotation no longer verifies");
    assert!(!json_token.verify(&new_key));
    // The running portal signs new tokens with the new key.
    let out = server.owtctl_url(&["token", "create", &room, "--user", "v"]);
    let fresh = owt_auth::Token::decode(stdout_ok(&out).trim()).unwrap();
    assert!(fresh.verify(&new_key), "tokens after the rotation use the new key");
    assert!(!fresh.verify(&old_key));
}

// ---- exit codes -------------------------------------------------------------------------

#[test]
fn exit_codes() {
    let server = TestServer::start();
    expect_exit(&server.owtctl_url(&["room", "show", "0123456789abcdef01234567"]), 3);
    expect_exit(&server.owtctl_url(&["room", "show", "not-an-id"]), 3);
    let wrong_key = server.owtctl_url(&["--service-id", &server.super_id, "--service-key", "wrong", "room", "list"]);
    expect_exit(&wrong_key, 4);
    let unreachable = command("owtctl")
        .arg("--config-dir")
        .arg(server.etc_dir())
        .args(["--url", &format!("http://127.0.0.1:{}", free_port()), "room", "list"])
        .output()
        .unwrap();
    expect_exit(&unreachable, 5);
    let invalid = server.owtctl_url(&["room", "create", "bad", "--input-limit", "-7"]);
    expect_exit(&invalid, 6);
    let stderr = String::from_utf8_lossy(&invalid.stderr);
    assert!(stderr.contains("inputLimit"), "the error names the field: {stderr}");
    assert_eq!(server.get("/v1/rooms").as_array().unwrap().len(), 1, "invalid room not created");
    expect_exit(&server.owtctl(&[]), 2);
    expect_exit(&server.owtctl(&["room"]), 2);
    expect_exit(&server.owtctl(&["room", "list", "--no-such-flag"]), 2);
    expect_exit(&server.owtctl(&["frobnicate"]), 2);
    expect_exit(&server.owtctl_url(&["--service-id", &server.super_id, "room", "list"]), 1);
    // Success is 0, and the credentials come from the database.
    expect_exit(&server.owtctl_url(&["room", "list"]), 0);
    let help = server.owtctl(&["--help"]);
    expect_exit(&help, 0);
    assert!(String::from_utf8_lossy(&help.stdout).contains("EXIT STATUS"));
}

// ---- init ---------------------------------------------------------------------------------

#[test]
fn init_is_idempotent() {
    let server = TestServer::init_with(Options::default());
    let cert_path = server.state_dir().join("cert").join("certificate.pem");
    let cert_before = std::fs::read(&cert_path).expect("init wrote a certificate");
    let key_path = server.state_dir().join("cert").join("key.pem");
    assert_eq!(mode(&key_path), 0o600, "key.pem is private");

    let again = json_ok(&server.owtctl(&["init", "--json"]));
    assert_eq!(again["superService"]["id"], json!(server.super_id));
    assert_eq!(again["superService"]["created"], json!(false));
    assert!(again["superService"].get("key").is_none(), "key is shown only once: {again}");
    assert!(again.get("room").is_none(), "no second default room: {again}");
    assert!(again.get("certificate").is_none(), "certificate kept: {again}");
    assert_eq!(std::fs::read(&cert_path).unwrap(), cert_before);
    let creds = json_ok(&server.owtctl(&["init", "--print-credentials", "--json"]));
    assert_eq!(creds["superService"]["key"], json!(server.super_key));

    let store = owt_store::Store::open(&server.db_path()).unwrap();
    let services = store.services().unwrap();
    assert_eq!(services.len(), 1, "no new super service");
    assert_eq!(services[0].id, server.super_id);
    assert_eq!(store.rooms(&server.super_id, 1, 0).unwrap().len(), 1, "room count unchanged");
    let human = stdout_ok(&server.owtctl(&["init"]));
    assert!(human.contains("already exists"), "{human}");
    assert_eq!(store.rooms(&server.super_id, 1, 0).unwrap().len(), 1);
}

#[test]
fn init_into_a_fresh_directory() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    let state = dir.path().join("nested").join("state");
    std::fs::write(etc.join("portal.toml"), format!("[state]\ndir = \"{}\"\n", state.display())).unwrap();
    let run = |args: &[&str]| command("owtctl").arg("--config-dir").arg(&etc).args(args).output().unwrap();
    let report = json_ok(&run(&["init", "--json", "--room-name", "lobby"]));
    assert_eq!(report["superService"]["created"], json!(true));
    let key = report["superService"]["key"].as_str().expect("key reported");
    assert!(key.len() >= 16, "{report}");
    assert_eq!(report["room"]["name"], json!("lobby"));
    assert_eq!(report["certificate"]["created"], json!(true));
    assert!(state.join("owt.db").exists());
    assert_eq!(mode(&state.join("cert").join("key.pem")), 0o600);
    let store = owt_store::Store::open(&state.join("owt.db")).unwrap();
    let service = store.super_service().unwrap().expect("super service");
    assert_eq!(service.key, key);
    assert_eq!(service.id, report["superService"]["id"].as_str().unwrap());
    assert_eq!(service.room_ids, vec![report["room"]["id"].as_str().unwrap().to_string()]);

    // --no-room and --no-cert in yet another directory.
    let state2 = dir.path().join("state2");
    let report = json_ok(&run(&["--state-dir", state2.to_str().unwrap(), "init", "--no-room", "--no-cert", "--json"]));
    assert!(report["superService"]["key"].is_string());
    assert!(report.get("room").is_none() && report.get("certificate").is_none(), "{report}");
    assert!(!state2.join("cert").join("certificate.pem").exists());
}

// ---- certificates -------------------------------------------------------------------------

#[test]
fn cert_generate_and_show() {
    let server = TestServer::init_with(Options::default());
    let shown = cert_show(&server);
    let names: Vec<&str> = shown["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert!(names.contains(&"127.0.0.1") && names.contains(&"localhost") && names.contains(&"::1"), "{names:?}");
    assert!(shown["subject"].as_str().unwrap().contains("O=owt-rs"), "{shown}");
    assert_eq!(shown["keyBits"], json!(2048));
    let human = stdout_ok(&server.owtctl(&["cert", "show"]));
    assert!(human.contains("127.0.0.1") && human.contains("sha256"), "{human}");

    let refused = server.owtctl(&["cert", "generate"]);
    expect_exit(&refused, 6);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    assert_eq!(cert_show(&server)["sha256"], shown["sha256"], "unchanged without --force");

    let out =
        server.owtctl(&["cert", "generate", "--force", "--name", "media.example", "--name", "127.0.0.1", "--json"]);
    let generated = json_ok(&out);
    assert_eq!(generated["names"], json!(["media.example", "127.0.0.1"]));
    assert_ne!(generated["sha256"], shown["sha256"]);
    assert!(generated["subject"].as_str().unwrap().contains("CN=media.example"));
    assert_eq!(cert_show(&server), generated);
    assert_eq!(mode(&server.state_dir().join("cert").join("key.pem")), 0o600);
    expect_exit(&server.owtctl(&["cert", "generate", "--force", "--days", "0"]), 6);
    // No certificate at all: show says not found.
    std::fs::remove_file(server.state_dir().join("cert").join("certificate.pem")).unwrap();
    expect_exit(&server.owtctl(&["cert", "show"]), 3);
}

#[test]
fn cert_import_pfx() {
    let server = TestServer::init_with(Options::default());
    let original = cert_show(&server);
    let (cert, key) = self_signed("imported.example");
    let pfx = openssl::pkcs12::Pkcs12::builder().name("owt").pkey(&key).cert(&cert).build2("pw").unwrap();
    let pfx_path = server.path().join("server.pfx");
    std::fs::write(&pfx_path, pfx.to_der().unwrap()).unwrap();
    let wrong = server.path().join("wrong.txt");
    std::fs::write(&wrong, "not-it\n").unwrap();
    let pass = server.path().join("pass.txt");
    std::fs::write(&pass, "pw\n").unwrap();
    let pfx_arg = pfx_path.to_str().unwrap();

    expect_exit(&server.owtctl(&["cert", "import", pfx_arg, "--passphrase-file", wrong.to_str().unwrap()]), 6);
    expect_exit(&server.owtctl(&["cert", "import", pfx_arg]), 6);
    assert_eq!(cert_show(&server)["sha256"], original["sha256"], "a failed import changes nothing");

    let out = server.owtctl(&["cert", "import", pfx_arg, "--passphrase-file", pass.to_str().unwrap()]);
    stdout_ok(&out);
    let shown = cert_show(&server);
    assert!(shown["subject"].as_str().unwrap().contains("CN=imported.example"), "{shown}");
    assert_eq!(shown["names"], json!(["imported.example"]));
    let fingerprint = cert.digest(MessageDigest::sha256()).unwrap();
    let expected: Vec<String> = fingerprint.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(shown["sha256"], json!(expected.join(":")));

    // The installed key is the imported one, in clear, private.
    let key_path = server.state_dir().join("cert").join("key.pem");
    assert_eq!(mode(&key_path), 0o600);
    let installed = PKey::private_key_from_pem(&std::fs::read(&key_path).unwrap()).expect("key.pem is clear PEM");
    assert!(installed.public_eq(&key));
}

#[test]
fn cert_import_pem() {
    let server = TestServer::init_with(Options::default());
    let original = cert_show(&server);
    let (cert, key) = self_signed("pem.example");
    let cert_path = server.path().join("cert.pem");
    std::fs::write(&cert_path, cert.to_pem().unwrap()).unwrap();
    let encrypted = server.path().join("enc-key.pem");
    std::fs::write(&encrypted, key.private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"secret").unwrap())
        .unwrap();
    let pass = server.path().join("pass.txt");
    std::fs::write(&pass, "secret\n").unwrap();
    let (_, other_key) = self_signed("other.example");
    let other = server.path().join("other-key.pem");
    std::fs::write(&other, other_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let cert_arg = cert_path.to_str().unwrap();

    // Encrypted key without its passphrase, and a key of another certificate: refused.
    expect_exit(&server.owtctl(&["cert", "import", cert_arg, "--key", encrypted.to_str().unwrap()]), 6);
    let mismatch = server.owtctl(&["cert", "import", cert_arg, "--key", other.to_str().unwrap()]);
    expect_exit(&mismatch, 6);
    assert!(String::from_utf8_lossy(&mismatch.stderr).contains("does not belong"), "{}", text(&mismatch));
    expect_exit(&server.owtctl(&["cert", "import", cert_arg]), 6);
    assert_eq!(cert_show(&server)["sha256"], original["sha256"]);

    let out = server.owtctl(&[
        "cert",
        "import",
        cert_arg,
        "--key",
        encrypted.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
        "--json",
    ]);
    let shown = json_ok(&out);
    assert!(shown["subject"].as_str().unwrap().contains("CN=pem.example"), "{shown}");
    assert_eq!(cert_show(&server), shown);
    let key_path = server.state_dir().join("cert").join("key.pem");
    assert_eq!(mode(&key_path), 0o600);
    let key_pem = std::fs::read_to_string(&key_path).unwrap();
    assert!(!key_pem.contains("ENCRYPTED"), "the passphrase is not needed afterwards");
    assert!(PKey::private_key_from_pem(key_pem.as_bytes()).unwrap().public_eq(&key));

    // Certificate and clear key in one PEM file.
    let (cert2, key2) = self_signed("bundle.example");
    let bundle = server.path().join("bundle.pem");
    let mut data = cert2.to_pem().unwrap();
    data.extend(key2.private_key_to_pem_pkcs8().unwrap());
    std::fs::write(&bundle, data).unwrap();
    stdout_ok(&server.owtctl(&["cert", "import", bundle.to_str().unwrap()]));
    assert!(cert_show(&server)["subject"].as_str().unwrap().contains("CN=bundle.example"));
}

// ---- HTTPS --------------------------------------------------------------------------------

#[test]
fn https_portal() {
    let server = TestServer::start_with(Options { ssl: true, ..Default::default() });
    assert!(server.base_url().starts_with("https://"));
    let list = json_ok(&server.owtctl_url(&["room", "list", "--json"]));
    assert_eq!(list[0]["_id"], json!(server.default_room));
    // Without --url owtctl derives https://127.0.0.1:<port> from portal.toml.
    let list = json_ok(&server.owtctl(&["room", "list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 1);
    let created = json_ok(&server.owtctl(&["room", "create", "secure-room", "--json"]));
    assert_eq!(created["name"], json!("secure-room"));

    // A client that accepts the self-signed certificate.
    let reply = server.call("GET", "/v1/rooms", None, Auth::Super);
    assert_eq!(reply.ok_json().as_array().unwrap().len(), 2);
    assert_eq!(reply.header("Strict-Transport-Security"), Some("max-age=1024000; includeSubDomain"));
    let token = server.call(
        "POST",
        &format!("/v1/rooms/{}/tokens", server.default_room),
        Some(json!({"user": "u", "role": "presenter"})),
        Auth::Super,
    );
    assert!(owt_auth::Token::decode(token.ok_text()).unwrap().verify(&server.token_key()));

    // A client that trusts nothing extra refuses the certificate: it really is TLS.
    let strict = crate::support::agent().get(&format!("{}/v1/rooms", server.base_url())).call();
    assert!(matches!(strict, Err(ureq::Error::Transport(_))), "{strict:?}");
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let plain = crate::support::agent().get(&format!("http://127.0.0.1:{}/v1/rooms", server.port)).call();
    assert!(plain.is_err(), "{plain:?}");
}

#[test]
fn https_idle_connection_does_not_block_other_clients() {
    let server = TestServer::start_with(Options { ssl: true, ..Default::default() });
    // A client that connects and never starts the TLS handshake.
    let idle = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let url = format!("{}/v1/rooms", server.base_url());
    let header = server.auth_header(&Auth::Super).unwrap();
    let result = crate::support::insecure_agent()
        .get(&url)
        .set("Authorization", &header)
        .timeout(Duration::from_secs(10))
        .call();
    assert!(
        result.is_ok(),
        "HTTPS request while one TCP connection idles: {:?} after {:?}",
        result.err(),
        started.elapsed()
    );
    drop(idle);
}

// ---- room settings from files and flags on update -----------------------------------------

#[test]
fn room_update_from_files_and_flags() {
    let server = TestServer::start();
    let room = json_ok(&server.owtctl_url(&["room", "create", "upd", "--input-limit", "4", "--json"]));
    let id = room["_id"].as_str().unwrap().to_string();

    let json_file = server.path().join("update.json");
    std::fs::write(&json_file, r#"{"participantLimit": 7, "views": [{"label": "from-json"}]}"#).unwrap();
    let updated =
        json_ok(&server.owtctl_url(&["room", "update", &id, "--file", json_file.to_str().unwrap(), "--json"]));
    assert_eq!(updated["participantLimit"], json!(7));
    assert_eq!(updated["inputLimit"], json!(4), "settings the file does not name are kept");
    let labels: Vec<&Value> = updated["views"].as_array().unwrap().iter().map(|v| &v["label"]).collect();
    assert_eq!(labels, [&json!("from-json")]);

    let toml_file = server.path().join("update.toml");
    std::fs::write(&toml_file, "inputLimit = 6\n\n[[views]]\nlabel = \"from-toml\"\n[views.video]\nmaxInput = 2\n")
        .unwrap();
    let updated =
        json_ok(&server.owtctl_url(&["room", "update", &id, "--file", toml_file.to_str().unwrap(), "--json"]));
    assert_eq!(updated["inputLimit"], json!(6));
    assert_eq!(updated["participantLimit"], json!(7));
    assert_eq!(updated["views"][0]["label"], json!("from-toml"));
    assert_eq!(updated["views"][0]["video"]["maxInput"], json!(2));
    assert_eq!(server.get(&format!("/v1/rooms/{id}")), updated, "the API has what owtctl printed");

    // A file that is not TOML: invalid input (6), the message names the file, nothing changes.
    let broken = server.path().join("broken.toml");
    std::fs::write(&broken, "inputLimit = = 3\n").unwrap();
    let out = server.owtctl_url(&["room", "update", &id, "--file", broken.to_str().unwrap()]);
    expect_exit(&out, 6);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.toml"), "the error names the file: {stderr}");
    // A TOML file whose values break the room schema is refused by the portal the same way.
    let wrong_type = server.path().join("wrong-type.toml");
    std::fs::write(&wrong_type, "inputLimit = \"many\"\n").unwrap();
    let out = server.owtctl_url(&["room", "update", &id, "--file", wrong_type.to_str().unwrap()]);
    expect_exit(&out, 6);
    assert!(String::from_utf8_lossy(&out.stderr).contains("inputLimit"), "{}", text(&out));
    assert_eq!(server.get(&format!("/v1/rooms/{id}")), updated, "failed updates change nothing");

    // --select-active-audio on create and update.
    let audio = json_ok(&server.owtctl_url(&["room", "create", "audio", "--select-active-audio", "true", "--json"]));
    assert_eq!(audio["selectActiveAudio"], json!(true));
    let audio_id = audio["_id"].as_str().unwrap();
    let off = json_ok(&server.owtctl_url(&["room", "update", audio_id, "--select-active-audio", "false", "--json"]));
    assert_eq!(off["selectActiveAudio"], json!(false));
    expect_exit(&server.owtctl_url(&["room", "update", audio_id, "--select-active-audio", "maybe"]), 2);
    assert_eq!(server.get(&format!("/v1/rooms/{audio_id}"))["selectActiveAudio"], json!(false));
}

// ---- --json output of the commands that only report success -------------------------------

#[test]
fn json_output_of_delete_and_rotate_key() {
    let server = TestServer::start();
    let service = json_ok(&server.owtctl_url(&["service", "create", "doomed", "--json"]));
    let service_id = service["_id"].as_str().unwrap();
    let deleted = json_ok(&server.owtctl_url(&["service", "delete", service_id, "--json"]));
    assert_eq!(deleted["ok"], json!(true), "{deleted}");
    assert!(deleted["message"].as_str().unwrap().contains(service_id), "{deleted}");
    expect_exit(&server.owtctl_url(&["service", "show", service_id, "--json"]), 3);

    let room = json_ok(&server.owtctl_url(&["room", "create", "doomed", "--json"]));
    let room_id = room["_id"].as_str().unwrap();
    let deleted = json_ok(&server.owtctl_url(&["room", "delete", room_id, "--json"]));
    assert_eq!(deleted["ok"], json!(true), "{deleted}");
    assert!(deleted["message"].as_str().unwrap().contains(room_id), "{deleted}");
    let missing = server.owtctl_url(&["room", "delete", room_id, "--json"]);
    expect_exit(&missing, 3);
    assert!(missing.stdout.is_empty(), "no success report for a failure: {}", text(&missing));

    let key_before = server.token_key();
    let rotated = json_ok(&server.owtctl(&["token", "rotate-key", "--json"]));
    assert_eq!(rotated["ok"], json!(true), "{rotated}");
    assert!(rotated["message"].as_str().unwrap().contains("rotated"), "{rotated}");
    assert_ne!(server.token_key(), key_before);
}

// ---- certificate passphrases from stdin and the environment -------------------------------

/// owtctl `cert import` for `server`, with `stdin` written to its standard input.
fn cert_import_with_stdin(server: &TestServer, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = command("owtctl")
        .arg("--config-dir")
        .arg(server.etc_dir())
        .args(["cert", "import"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run owtctl");
    // owtctl may exit before reading stdin (e.g. a refused option): its output says why.
    let written = child.stdin.take().expect("stdin").write_all(stdin.as_bytes());
    if let Err(err) = written {
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {err}");
    }
    child.wait_with_output().expect("owtctl output")
}

#[test]
fn cert_import_passphrase_from_stdin_and_environment() {
    let server = TestServer::init_with(Options::default());
    let original = cert_show(&server);
    let (cert, key) = self_signed("stdin.example");
    let pfx = openssl::pkcs12::Pkcs12::builder().name("owt").pkey(&key).cert(&cert).build2("from-stdin").unwrap();
    let pfx_path = server.path().join("stdin.pfx");
    std::fs::write(&pfx_path, pfx.to_der().unwrap()).unwrap();
    let pfx_arg = pfx_path.to_str().unwrap();

    expect_exit(&cert_import_with_stdin(&server, &[pfx_arg, "--passphrase-stdin"], "not-it\n"), 6);
    assert_eq!(cert_show(&server)["sha256"], original["sha256"], "a wrong passphrase changes nothing");
    let pass = server.path().join("pass.txt");
    std::fs::write(&pass, "from-stdin\n").unwrap();
    let both = ["--passphrase-stdin", "--passphrase-file", pass.to_str().unwrap()];
    expect_exit(&cert_import_with_stdin(&server, &[&[pfx_arg][..], &both[..]].concat(), "from-stdin\n"), 2);
    stdout_ok(&cert_import_with_stdin(&server, &[pfx_arg, "--passphrase-stdin"], "from-stdin\n"));
    assert!(cert_show(&server)["subject"].as_str().unwrap().contains("CN=stdin.example"));

    // OWT_CERT_PASSPHRASE decrypts an encrypted PEM key; it is not written anywhere.
    let (cert, key) = self_signed("env.example");
    let cert_path = server.path().join("env-cert.pem");
    std::fs::write(&cert_path, cert.to_pem().unwrap()).unwrap();
    let key_path = server.path().join("env-key.pem");
    std::fs::write(&key_path, key.private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"from-env").unwrap())
        .unwrap();
    let import_with_env = |passphrase: &str| {
        command("owtctl")
            .arg("--config-dir")
            .arg(server.etc_dir())
            .args(["cert", "import", cert_path.to_str().unwrap(), "--key", key_path.to_str().unwrap(), "--json"])
            .env("OWT_CERT_PASSPHRASE", passphrase)
            .output()
            .expect("run owtctl")
    };
    expect_exit(&import_with_env("wrong"), 6);
    assert!(cert_show(&server)["subject"].as_str().unwrap().contains("CN=stdin.example"));
    let shown = json_ok(&import_with_env("from-env"));
    assert!(shown["subject"].as_str().unwrap().contains("CN=env.example"), "{shown}");
    let installed_key = std::fs::read_to_string(server.state_dir().join("cert").join("key.pem")).unwrap();
    assert!(!installed_key.contains("ENCRYPTED"));
    assert!(PKey::private_key_from_pem(installed_key.as_bytes()).unwrap().public_eq(&key));
    let config = std::fs::read_to_string(server.config_path()).unwrap();
    assert!(!config.contains("from-env") && !config.contains("from-stdin"), "passphrase stored in portal.toml");
}

// ---- owt-portal before `owtctl init` ------------------------------------------------------

#[test]
fn portal_on_an_uninitialised_state_dir_says_to_run_init() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    let state = dir.path().join("state");
    let api_port = free_port();
    std::fs::write(
        etc.join("portal.toml"),
        format!(
            "[state]\ndir = \"{}\"\n\n[management-api]\nip_address = \"127.0.0.1\"\nport = {api_port}\n\n[portal]\n\
             ip_address = \"127.0.0.1\"\nbind_address = \"127.0.0.1\"\nport = {}\n\n[cluster]\n\
             bus = \"tcp://127.0.0.1:{}\"\n\n[app]\nenabled = false\n",
            state.display(),
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let mut portal = command("owt-portal")
        .arg("--config-dir")
        .arg(&etc)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn owt-portal");
    let status = crate::support::wait_exit(&mut portal, Duration::from_secs(20));
    if status.is_none() {
        let _ = portal.kill();
        let _ = portal.wait();
    }
    let mut stderr = String::new();
    portal.stderr.take().expect("stderr").read_to_string(&mut stderr).unwrap();
    let status = status.unwrap_or_else(|| panic!("owt-portal keeps running without a database; stderr:\n{stderr}"));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("owtctl init"), "the error says what to do: {stderr}");
    assert!(stderr.contains(&state.join("owt.db").display().to_string()), "and names the database: {stderr}");
    assert!(!state.join("owt.db").exists(), "no half-made database is left behind");

    // After `owtctl init` the same configuration serves.
    let init = command("owtctl").arg("--config-dir").arg(&etc).args(["init", "--no-cert", "--json"]).output().unwrap();
    json_ok(&init);
    let mut portal = command("owt-portal")
        .arg("--config-dir")
        .arg(&etc)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn owt-portal");
    let serving = crate::support::wait_for_port(api_port, Duration::from_secs(20));
    let _ = portal.kill();
    let _ = portal.wait();
    assert!(serving, "owt-portal serves once `owtctl init` ran");
}

/// `portal.force_tls_v12` is always in force: the REST API's TLS refuses 1.0 and 1.1.
#[test]
fn https_portal_refuses_tls_below_1_2() {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
    let server = TestServer::start_with(Options { ssl: true, ..Default::default() });
    let handshake = |max: SslVersion| {
        let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
        builder.set_verify(SslVerifyMode::NONE);
        // Security level 0 lets this client offer the old versions; refusing is the server's job.
        builder.set_cipher_list("DEFAULT:@SECLEVEL=0").unwrap();
        builder.set_min_proto_version(Some(SslVersion::TLS1)).unwrap();
        builder.set_max_proto_version(Some(max)).unwrap();
        let stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        builder.build().connect("localhost", stream).map(|tls| tls.ssl().version_str().to_string())
    };
    assert_eq!(handshake(SslVersion::TLS1_2).expect("a TLS 1.2 handshake"), "TLSv1.2");
    for old in [SslVersion::TLS1_1, SslVersion::TLS1] {
        let refused = handshake(old);
        assert!(refused.is_err(), "handshake with TLS at most {old:?}: {refused:?}");
    }
}
