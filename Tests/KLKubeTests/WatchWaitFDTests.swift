import KLCore
import KLSystem
import KLTestSupport
import Testing
@testable import KLKube
@testable import KLTransport

/// Before a watch read, the leader's host polls `watchWaitFD` with
/// its wake-up pipe. Lines already received must never wait on the socket
/// (nil: read at once), or an event would sit until the next renew.
@Suite("KubeLockStore.watchWaitFD", .timeLimit(.minutes(1)))
struct WatchWaitFDTests {
    @Test func bufferedLines_areReadAtOnce_noWatchNoDescriptor() throws {
        let first = #"{"type":"MODIFIED","object":{"metadata":{"name":"lock","resourceVersion":"501"}}}"#
        let second = #"{"type":"MODIFIED","object":{"metadata":{"name":"lock","resourceVersion":"502"}}}"#
        let server = CannedAPIServer { _ in KubeLockStoreTests.chunked([first, second]) }
        let s = try KubeLockStoreTests.store(server)
        #expect(s.watchWaitFD == nil, "no watch open")
        #expect(s.send(.watch(resourceVersion: "500", timeoutSeconds: 300), timeout: .seconds(5)) == .ok(.null))
        if let fd = s.watchWaitFD {
            // Nothing buffered yet: the descriptor becomes readable as the bytes come.
            let pipe = try WakePipe()
            #expect(pipe.wait(until: MonotonicClock.now + .seconds(5), orReadable: fd).readable)
        }
        #expect(s.readWatch(until: .now + .seconds(5)) == .line(first))
        // The whole answer came in one write: the second line is buffered.
        #expect(s.watchWaitFD == nil, "a buffered line must be read at once, not waited for on the socket")
        #expect(s.readWatch(until: .now + .seconds(5)) == .line(second))
        #expect(s.readWatch(until: .now + .seconds(5)) == .ended)
        s.closeWatch()
        #expect(s.watchWaitFD == nil, "closed")
    }
}
