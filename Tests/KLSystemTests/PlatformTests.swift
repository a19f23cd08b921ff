import KLCore
import KLSystem
import KLTestSupport
import Synchronization
import Testing

@Suite("platform layer: files, poll timeouts, sleeps, threads, errno text")
struct PlatformTests {
    func write(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        defer { close(fd) }
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        try #require(n == bytes.count)
    }

    @Test func readWholeFile_readsEveryByte_acrossChunks() throws {
        let dir = makeTemporaryDirectory(prefix: "klsupport-test")
        let bytes = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try write(dir + "/big", bytes)
        #expect(try readWholeFile(dir + "/big").get() == bytes)
        try write(dir + "/empty", [])
        #expect(try readWholeTextFile(dir + "/empty").get() == "")
    }

    @Test func readWholeFile_atTheLimit_succeeds_andOneByteMore_isTooLarge() throws {
        let dir = makeTemporaryDirectory(prefix: "klsupport-test")
        try write(dir + "/f", [UInt8](repeating: 65, count: 1024))
        #expect(try readWholeTextFile(dir + "/f", limit: 1024).get().count == 1024)
        let error = FileReadFailure(path: dir + "/f", reason: .tooLarge(limit: 1023))
        #expect(readWholeFile(dir + "/f", limit: 1023) == .failure(error))
        #expect(FileReadFailure(path: "x", reason: .tooLarge(limit: 1 << 20)).description == "larger than 1 MiB")
    }

    @Test func readWholeFile_namesTheErrno_forMissingFilesAndFolders() {
        let dir = makeTemporaryDirectory(prefix: "klsupport-test")
        #expect(readWholeFile(dir + "/missing") == .failure(FileReadFailure(path: dir + "/missing", reason: .cannotOpen(errno: ENOENT))))
        #expect(readWholeFile(dir) == .failure(FileReadFailure(path: dir, reason: .cannotRead(errno: EISDIR))))
        if case .failure(let e) = readWholeFile(dir + "/missing") {
            #expect(e.description == "No such file or directory")
        }
    }

    @Test func openForReadingFailure_namesTheErrno_andOpensWithoutReading() throws {
        let dir = makeTemporaryDirectory(prefix: "klsupport-test")
        #expect(openForReadingFailure(dir + "/missing") == FileReadFailure(path: dir + "/missing", reason: .cannotOpen(errno: ENOENT)))
        try write(dir + "/present", Array("x".utf8))
        #expect(openForReadingFailure(dir + "/present") == nil)
        #expect(openForReadingFailure(dir) == nil)  // opens; reading it is the reader's failure
    }

    @Test func hostName_isTheKernelsHostName() throws {
        let kernel = try readWholeTextFile("/proc/sys/kernel/hostname").get().trimmingWhitespace
        #expect(ProcessEnvironment.hostName() == kernel)
        #expect(!ProcessEnvironment.hostName().isEmpty)
    }

    @Test func readToEnd_readsAnOpenDescriptor_andLeavesItOpen() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let text = Array("from a pipe\n".utf8)
        _ = text.withUnsafeBytes { Glibc.write(fds[1], $0.baseAddress, $0.count) }
        close(fds[1])
        #expect(try readToEnd(fd: fds[0], path: "standard input").get() == text)
        #expect(fcntl(fds[0], F_GETFD) >= 0)
    }

    @Test func readWholeFile_stopsAnEndlessDevice_atTheLimit() {
        #expect(readWholeFile("/dev/zero", limit: 100_000) == .failure(FileReadFailure(path: "/dev/zero", reason: .tooLarge(limit: 100_000))))
    }

    @Test(arguments: [
        (nil, -1), (Duration.zero, 0), (.seconds(-3), 0), (.nanoseconds(1), 1), (.microseconds(1500), 2),
        (.milliseconds(250), 250), (.seconds(3), 3000), (.seconds(Int64.max / 2), Int32.max),
    ] as [(Duration?, Int32)])
    func pollTimeout_roundsUp_neverSpins_andClamps(timeout: Duration?, expected: Int32) {
        #expect(pollTimeoutMilliseconds(timeout) == expected)
    }

    @Test func pollTimeout_untilAPassedDeadline_isZero() {
        #expect(pollTimeoutMilliseconds(until: MonotonicClock.now - .seconds(1)) == 0)
        let ms = pollTimeoutMilliseconds(until: MonotonicClock.now + .seconds(60))
        #expect(ms > 59_000 && ms <= 60_000)
    }

    @Test func blockingSleep_waitsAtLeastTheDuration_andNothingForZeroOrLess() {
        let start = MonotonicClock.now
        blockingSleep(.seconds(-5))
        blockingSleep(.zero)
        blockingSleep(.milliseconds(20))
        #expect(MonotonicClock.now - start >= .milliseconds(20))
    }

    @Test func startDetachedThread_runsTheBody_onAnotherThread() {
        let done = Atomic<Int>(0)
        let caller = pthread_self()
        let rc = startDetachedThread(stackSize: 1 << 20) {
            done.store(pthread_equal(pthread_self(), caller) == 0 ? 1 : 2, ordering: .releasing)
        }
        #expect(rc == 0)
        let deadline = MonotonicClock.now + .seconds(30)
        while done.load(ordering: .acquiring) == 0, MonotonicClock.now < deadline { blockingSleep(.milliseconds(1)) }
        #expect(done.load(ordering: .acquiring) == 1)
    }

    @Test func errnoMessage_isTheCLibraryText() {
        #expect(errnoMessage(ENOENT) == "No such file or directory")
        #expect(errnoMessage(EACCES) == "Permission denied")
    }
}

@Suite("one clock protocol: real and virtual clocks")
struct ClockTests {
    @Test func virtualClock_jumpsToTheDeadline_recordsTheSleep_andNeverGoesBack() {
        let start = MonotonicInstant(nanoseconds: 1_000_000_000)
        let woken = Mutex<[MonotonicInstant]>([])
        let clock = VirtualMonotonicClock(start: start) { deadline in woken.withLock { $0.append(deadline) } }
        clock.sleep(until: start + .seconds(5))
        #expect(clock.now == start + .seconds(5))
        clock.sleep(until: start + .seconds(1))   // already passed: time stays
        #expect(clock.now == start + .seconds(5))
        clock.sleep(for: .milliseconds(250))
        #expect(clock.now == start + .milliseconds(5250))
        #expect(clock.sleeps == [.seconds(5), .seconds(-4), .milliseconds(250)])
        #expect(woken.withLock { $0 } == [start + .seconds(5), start + .seconds(1), start + .milliseconds(5250)])
        clock.advance(by: .seconds(1))
        #expect(clock.now == start + .milliseconds(6250))
    }

    @Test func virtualWallClock_movesWallTime() {
        let clock = VirtualWallClock(start: WallTime(seconds: 100, nanoseconds: 900_000_000))
        clock.sleep(for: .milliseconds(200))
        #expect(clock.now == WallTime(seconds: 101, nanoseconds: 100_000_000))
        #expect(clock.sleeps == [.milliseconds(200)])
    }

    @Test func generic_code_runs_on_any_clock() {
        func waitTwice<C: BlockingClock>(_ clock: C) -> Duration where C.Instant == MonotonicInstant {
            let start = clock.now
            clock.sleep(for: .milliseconds(5))
            clock.sleep(until: clock.now + .milliseconds(5))
            return start.duration(to: clock.now)
        }
        #expect(waitTwice(VirtualMonotonicClock()) == .milliseconds(10))
        #expect(waitTwice(MonotonicClock()) >= .milliseconds(10))
    }

    @Test func wallClock_readsTheRealTime() {
        let before = wallNow()
        let now = WallClock().now
        #expect(now >= before && now.duration(since: before) < .seconds(60))
        #expect(now.seconds > 1_700_000_000)
    }
}
