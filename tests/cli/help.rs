use assert_cmd::Command;

#[test]
fn help_lists_the_verbs() {
    let out = Command::cargo_bin("moltvault")
        .unwrap()
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for verb in ["redact", "scan"] {
        assert!(text.contains(verb), "help lacks {verb}:\n{text}");
    }
}
