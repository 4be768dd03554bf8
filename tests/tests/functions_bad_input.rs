//! Issue 7, item 10, through the real binaries: every function, invoked as
//! Lambda invokes it with each malformed or inconsistent input of `events/`,
//! answers `Strongroom.InvalidInput` naming the field, and makes no AWS call:
//! nothing is created or deleted.

use strongroom_tests::{workspace, Emulator};

#[tokio::test]
async fn every_function_refuses_bad_input_before_any_call() {
    let emu = Emulator::start();
    let _ = emu.seed("test");
    let before = emu.recovery_points().await;
    emu.reset_calls();
    let mut sent = 0;
    for (function, inputs) in [
        ("discover", "discover"),
        ("snapshot", "snapshot"),
        ("status", "status"),
        ("copy", "copy"),
        ("prune", "prune"),
        ("report", "report"),
        // The restore function's step inputs (events/restore/ holds the
        // state machine's requests).
        ("restore", "restore-step"),
    ] {
        let dir = workspace().join("events").join(inputs);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("invalid-"))
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "events/{inputs}/ has no invalid-* input");
        for file in files {
            let payload: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let answer = emu.invoke(function, &payload);
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(
                answer["errorType"], "Strongroom.InvalidInput",
                "{function} {name}: {answer}"
            );
            let message = answer["errorMessage"].as_str().unwrap_or_default();
            assert!(
                message.starts_with("invalid input at `") && !message.contains("``"),
                "{function} {name}: the message names the field: {message}"
            );
            sent += 1;
        }
    }
    assert!(sent >= 12, "only {sent} invalid inputs");
    let calls: Vec<_> = emu
        .calls()
        .into_iter()
        .filter(|c| c.client != "harness")
        .collect();
    assert!(calls.is_empty(), "AWS calls on bad input: {calls:?}");
    assert_eq!(emu.recovery_points().await, before, "nothing changed");
}
