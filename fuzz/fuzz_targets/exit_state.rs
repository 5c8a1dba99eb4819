//! The exit state: `ExitState::from_systemd_env` (what `ExecStopPost` gets from systemd in
//! `$EXIT_CODE`/`$EXIT_STATUS`) and the JSON file it is kept in, which the daemon reads back.
//! Neither may panic on anything; what they accept must mean what systemd.exec(5) says, and a
//! parsed file must round-trip.

#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use runc_wrap::protocol::ExitState;

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Environment { exit_code: Option<&'a str>, exit_status: Option<&'a str>, seconds: u32, nanos: u32 },
    File(&'a [u8]),
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Environment { exit_code, exit_status, seconds, nanos } => {
        let now = UNIX_EPOCH + Duration::new(u64::from(seconds), nanos % 1_000_000_000);
        let result = ExitState::from_systemd_env(exit_code, exit_status, now);
        let (Some(code), Some(status)) = (exit_code, exit_status) else {
            assert!(matches!(result, Ok(None)), "{result:?}");
            return;
        };
        match result {
            Ok(Some(state)) => {
                assert_eq!(state.exited_at(), now, "{state:?}");
                match code {
                    "exited" => {
                        assert_eq!(Ok(state.status), status.parse::<u32>(), "{status:?}");
                        assert_eq!(state.signal, None);
                    }
                    "killed" | "dumped" => {
                        let signal = state.signal.expect("a signal death names its signal");
                        assert!((1..=64).contains(&signal), "signal {signal} from {status:?}");
                        assert_eq!(state.status, 128 + signal as u32);
                    }
                    other => panic!("accepted EXIT_CODE {other:?}"),
                }
                round_trip(&state);
            }
            Ok(None) => panic!("{code:?}/{status:?} gave nothing"),
            Err(error) => {
                assert!(error.to_string().contains(&format!("{status:?}")), "the error names the status: {error}")
            }
        }
    }
    Input::File(bytes) => {
        if let Ok(state) = serde_json::from_slice::<ExitState>(bytes) {
            let _ = state.exited_at();
            round_trip(&state);
        }
    }
});

fn round_trip(state: &ExitState) {
    let json = serde_json::to_vec(state).expect("an exit state serializes");
    assert_eq!(&serde_json::from_slice::<ExitState>(&json).expect("and parses back"), state);
}
