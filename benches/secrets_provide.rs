//! Benchmarks a cold `moltvault secrets provide` for 20 ids (target: under 50 ms), against the
//! binary's bare start-up (`moltvault --version`) measured in the same run.
//!
//! Each run is a fresh process: start, read the vault config and the store index, unlock with
//! the identity from `$CREDENTIALS_DIRECTORY`, decrypt 20 age files, answer on stdout.
#![allow(clippy::disallowed_methods, clippy::print_stdout)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use moltvault_vault::secrets_store::{NewSecret, SecretsStore};
use moltvault_vault::{InitOptions, Vault};
use secrecy::SecretString;

const RUNS: usize = 21;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_moltvault");
    let tmp = tempfile::tempdir().unwrap();
    let vault_dir = tmp.path().join(".moltvault");
    let mut opts = InitOptions::new(SecretString::from("bench passphrase"));
    opts.work_factor = 10;
    let (vault, recovery) = Vault::init(&vault_dir, opts).unwrap();
    let creds = tmp.path().join("creds");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(creds.join("moltvault-identity"), recovery.expose()).unwrap();
    let mut store = SecretsStore::open(&vault_dir).unwrap();
    let ids: Vec<String> = (0..20).map(|i| format!("providers/p{i}/apiKey")).collect();
    for (i, id) in ids.iter().enumerate() {
        let value = SecretString::from(format!("bench-value-{i:02}-0123456789abcdef"));
        let meta = NewSecret {
            provider: "bench".into(),
            origin: "manual".into(),
            fp8: "00000000".into(),
        };
        store.set(id, &value, vault.recipient(), meta).unwrap();
    }
    let request =
        serde_json::json!({"protocolVersion": 1, "provider": "moltvault", "ids": ids}).to_string();

    let mut provide = Vec::new();
    let mut baseline = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let out = Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        baseline.push(t.elapsed());
        assert!(out.success());

        let t = Instant::now();
        let mut child = Command::new(bin)
            .env_clear()
            .env("HOME", tmp.path())
            .env("CREDENTIALS_DIRECTORY", &creds)
            .arg("--vault-dir")
            .arg(&vault_dir)
            .args(["secrets", "provide"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(request.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        provide.push(t.elapsed());
        let resp: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(resp["values"].as_object().unwrap().len(), 20);
    }
    let (p, b) = (median(provide), median(baseline));
    println!(
        "secrets provide, 20 ids, cold: median {:.1} ms | baseline `--version`: median {:.1} ms | ratio {:.1}x (n={RUNS})",
        p.as_secs_f64() * 1000.0,
        b.as_secs_f64() * 1000.0,
        p.as_secs_f64() / b.as_secs_f64()
    );
}
