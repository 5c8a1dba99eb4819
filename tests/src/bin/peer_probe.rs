//! `peer_probe SOCKET`: connects to a daemon's ttrpc socket the way containerd does and sends one
//! State request, reporting what happened, one `key: value` line each, for the peer-credentials
//! test to run under another uid (`setpriv --reuid …`):
//!
//! ```text
//! pid: 1234
//! connect: ok | EACCES | <other error>
//! request: answered <code> | closed (<error>) | timed out
//! ```

use std::os::unix::net::UnixStream;
use std::time::Duration;

use containerd_shim_protos::api::StateRequest;
use containerd_shim_protos::shim_async::TaskClient;
use ttrpc::asynchronous::transport::Socket;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(socket) = std::env::args().nth(1) else {
        eprintln!("usage: peer_probe SOCKET");
        std::process::exit(2);
    };
    println!("pid: {}", std::process::id());
    let stream = match UnixStream::connect(&socket) {
        Ok(stream) => stream,
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
            println!("connect: EACCES");
            return;
        }
        Err(error) => {
            println!("connect: {error}");
            return;
        }
    };
    println!("connect: ok");
    stream.set_nonblocking(true).expect("non-blocking socket");
    let stream = tokio::net::UnixStream::from_std(stream).expect("a tokio socket");
    let client = TaskClient::new(ttrpc::asynchronous::Client::new(Socket::new(stream)));
    let request = StateRequest { id: "peer-probe".into(), ..Default::default() };
    let context = ttrpc::context::with_duration(Duration::from_secs(5));
    match tokio::time::timeout(Duration::from_secs(10), client.state(context, &request)).await {
        Ok(Err(ttrpc::Error::RpcStatus(status))) => println!("request: answered {:?}", status.code()),
        Ok(Ok(_)) => println!("request: answered OK"),
        Ok(Err(error)) => println!("request: closed ({error})"),
        Err(_) => println!("request: timed out"),
    }
}
