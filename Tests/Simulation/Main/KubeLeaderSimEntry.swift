// kube-leader-sim: runs the deterministic simulation over many seeds.
// Usage: kube-leader-sim --seeds N --from S [--replicas K] [--hours H]
//        [--faults kind,kind] [--threads T] [--trace] [--scenario NAME|all]
import Dispatch
import KLCore
import KLSimulation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

let help = """
kube-leader-sim: deterministic simulation of kube-leader replicas running the
production code (Election, LockSession, Supervision and SupervisorDriver; only
the I/O is simulated) against a simulated API server, network, processes and
clocks, on simulated time, with faults drawn from a seed.

Options:
  --seeds N          how many seeds (default 10)
  --from S           first seed (default 1); seeds S, S+1, ... S+N-1
  --replicas K       replicas per seed (default: drawn from the seed, 2-5)
  --hours H          simulated hours per seed (default 1)
  --faults LIST      fault kinds to draw from: guaranteed (default: every kind
                     the documented guarantees cover), all, none, or a list of
                     \(FaultKind.allCases.map(\.rawValue).joined(separator: ","))
  --threads T        seeds run in parallel (default 1)
  --trace            print the event log of every failing seed (and of a single seed)
  --trace-lines N    how many lines, up to 50 after the first violation (default 2000)
  --scenario NAME    run a named scenario (row1 ... row10, or all of them) and print its result
  --list-scenarios   print the names of the scenarios

Prints one key=value summary line: seeds, replica_hours, violations,
min_safety_margin_ms, events, wall_seconds. Exit 1 on any violation.
Every failing seed prints its replay command.

"""

func fail(_ message: String) -> Never {
    print("kube-leader-sim: \(message)")
    exit(2)
}

/// The event log around the first violation (the end when there is none).
func window(_ trace: [String], _ lines: Int) -> ArraySlice<String> {
    guard let i = trace.firstIndex(where: { $0.contains(" VIOLATION ") }) else { return trace.suffix(lines) }
    let end = min(trace.count, i + 50)
    return trace[max(0, end - lines)..<end]
}

struct Totals {
    var replicaHours = 0.0
    var standbyReplicaHours = 0.0
    var rejoins = 0
    var handOvers = 0
    var violations = 0
    var overlaps = 0, budget = 0, liveness = 0
    var overlapSeeds = 0, budgetSeeds = 0, livenessSeeds = 0
    var failingSeeds: [Simulation.SeedResult] = []
    var minMargin: SimTime?
    var events = 0
}

struct RunOptions: Sendable {
    var seeds: Int, from: UInt64, replicas: Int?, hours: Double, kinds: [FaultKind], trace: Bool
}

/// kube-leader-sim's entry point: parse the options, then run one scenario
/// or the seeds (on `--threads` threads) and print the summary.
@main
enum KubeLeaderSimEntry {
    static func main() {
        var seeds = 10
        var from: UInt64 = 1
        var replicas: Int?
        var hours = 1.0
        var kinds = FaultKind.guaranteed
        var threads = 1
        var trace = false
        var scenario: String?
        var traceLines = 2000

        var args = Array(CommandLine.arguments.dropFirst())
        while !args.isEmpty {
            let a = args.removeFirst()
            func value() -> String {
                guard !args.isEmpty else { fail("\(a) needs a value") }
                return args.removeFirst()
            }
            switch a {
            case "--seeds": seeds = Int(value()) ?? { fail("--seeds takes a number") }()
            case "--from": from = UInt64(value()) ?? { fail("--from takes a number") }()
            case "--replicas":
                guard let k = Int(value()), k >= 2, k <= 50 else { fail("--replicas takes a number from 2 to 50") }
                replicas = k
            case "--hours":
                guard let h = Double(value()), h > 0, h <= 10_000 else { fail("--hours takes a positive number") }
                hours = h
            case "--faults":
                let v = value()
                kinds = FaultKind.parse(v) ?? { fail("--faults takes all, none, guaranteed or a list of: \(FaultKind.allCases.map(\.rawValue).joined(separator: ","))") }()
            case "--threads": threads = max(1, Int(value()) ?? 1)
            case "--trace": trace = true
            case "--trace-lines": trace = true; traceLines = Int(value()) ?? 2000
            case "--scenario": scenario = value()
            case "--list-scenarios":
                for s in Scenarios.all { print("\(s.name)\t\(s.title)") }
                for s in Scenarios.outsideGuarantees { print("\(s.name)\t(outside the guarantees: overlaps today) \(s.title)") }
                exit(0)
            case "-h", "--help":
                print(help, terminator: "")
                exit(0)
            default: fail("unknown option \(a); see --help")
            }
        }

        if let scenario {
            let chosen = scenario == "all" ? Scenarios.all : (Scenarios.all + Scenarios.outsideGuarantees).filter { $0.name == scenario }
            if chosen.isEmpty { fail("no scenario \(scenario); --list-scenarios names them") }
            var failed = 0
            for s in chosen {
                let r = s.run(trace: trace)
                print("scenario=\(s.name) result=\(r.passed ? "PASS" : "FAIL") overlap_ms=\(r.overlapMs) overlaps=\(r.overlaps) budget=\(r.budget) \(r.notes)")
                for f in r.failures { print("  - \(f)") }
                if trace { for line in r.trace { print("  \(line)") } }
                if !r.passed { failed += 1 }
            }
            exit(failed == 0 ? 0 : 1)
        }

        let options = RunOptions(seeds: seeds, from: from, replicas: replicas, hours: hours, kinds: kinds, trace: trace)
        let started = DispatchTime.now()
        let totals = Mutex(Totals())
        let next = Mutex(0)
        let single = seeds == 1

        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            while true {
                let i: Int = next.withLock { n in defer { n += 1 }; return n }
                if i >= options.seeds { return }
                let seed = options.from + UInt64(i)
                let r = Simulation.run(seed: seed, replicas: options.replicas, hours: options.hours,
                                       trace: single && options.trace, kinds: options.kinds)
                totals.withLock { t in
                    t.replicaHours += r.replicaHours
                    t.standbyReplicaHours += r.standbyReplicaHours
                    t.rejoins += r.rejoins
                    t.handOvers += r.handOvers
                    t.events += r.events
                    if let m = r.minSafetyMargin { t.minMargin = min(t.minMargin ?? m, m) }
                    let count = r.overlaps + r.budget + r.liveness
                    if count > 0 {
                        t.violations += count
                        t.overlaps += r.overlaps; t.budget += r.budget; t.liveness += r.liveness
                        if r.overlaps > 0 { t.overlapSeeds += 1 }
                        if r.budget > 0 { t.budgetSeeds += 1 }
                        if r.liveness > 0 { t.livenessSeeds += 1 }
                        t.failingSeeds.append(r)
                    }
                }
            }
        }

        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        let t = totals.withLock { $0 }
        for r in t.failingSeeds.sorted(by: { $0.seed < $1.seed }) {
            print("FAIL seed=\(r.seed) overlaps=\(r.overlaps) budget=\(r.budget) liveness=\(r.liveness) \(r.summary)")
            for v in r.violations.prefix(3) { print("  \(v)") }
            print("  replay: \(Simulation.replayCommand(seed: r.seed, replicas: replicas, hours: hours, kinds: kinds))")
            if trace {
                let traced = single ? r : Simulation.run(seed: r.seed, replicas: replicas, hours: hours, trace: true, kinds: kinds)
                for line in window(traced.trace, traceLines) { print("  | \(line)") }
            }
        }
        if single && trace && t.failingSeeds.isEmpty {
            let r = Simulation.run(seed: from, replicas: replicas, hours: hours, trace: true, kinds: kinds)
            print("seed=\(r.seed) \(r.summary)")
            for line in window(r.trace, traceLines) { print("  | \(line)") }
        }
        let margin = t.minMargin.map { String(Double($0) / 1e6) } ?? "none"
        let failing = t.failingSeeds.map { String($0.seed) }.sorted().prefix(20).joined(separator: ",")
        print("seeds=\(seeds) from=\(from) replica_hours=\(Int(t.replicaHours)) on_loss_standby_replica_hours=\(Int(t.standbyReplicaHours)) rejoins=\(t.rejoins) hand_overs=\(t.handOvers) violations=\(t.violations) failing_seeds=\(t.failingSeeds.count) "
              + "overlap_seeds=\(t.overlapSeeds) budget_seeds=\(t.budgetSeeds) liveness_seeds=\(t.livenessSeeds) "
              + "min_safety_margin_ms=\(margin) events=\(t.events) wall_seconds=\(Int(elapsed))\(failing.isEmpty ? "" : " first_failing=\(failing)")")
        exit(t.violations == 0 ? 0 : 1)
    }
}
