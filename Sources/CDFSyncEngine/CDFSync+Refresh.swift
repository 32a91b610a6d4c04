import CDFSyncCore
import CDFSyncStorage
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How `cdfsync refresh` runs (``CDFSync/refresh(_:onAbsent:)``).
public struct RefreshOptions: Sendable {
    /// Read and evaluate everything, apply, mark, deliver and checkpoint nothing.
    public var dryRun: Bool
    /// How many absent keys the run's record keeps (``RunRecord/Refresh/absentSample``).
    public var sampleSize: Int
    /// The file listing every absent key, noted in the run's record (the caller writes it).
    public var absentList: String?
    /// Source keys the sweep visits per write transaction.
    public var sweepChunk: Int

    public init(dryRun: Bool = false, sampleSize: Int = 20, absentList: String? = nil, sweepChunk: Int = 1000) {
        self.dryRun = dryRun
        self.sampleSize = max(0, sampleSize)
        self.absentList = absentList
        self.sweepChunk = max(1, sweepChunk)
    }
}

/// The state of one refresh while it runs: the set of keys read, and how batches are applied.
struct RefreshRun {
    let options: RefreshOptions
    let seen: ScratchKeySet
    let onAbsent: (PanelStore.AbsentKey) throws -> Void

    /// The writer a refresh's reads apply through: a dry run evaluates each batch and rolls it back; a refresh
    /// applies as a sync does.
    func writer(store: PanelStore, scope: String, activation: PanelStore.ActivationSettings? = nil) -> BatchWriter {
        if options.dryRun {
            return BatchWriter(capacity: 2) { changes, _ in try store.evaluate(changes, scope: scope) }
        }
        return BatchWriter(capacity: 2) { changes, checkpoint in
            let outcome = try store.apply(changes, scope: scope, pipeline: scope, checkpoint: checkpoint,
                activation: activation)
            store.environment.releaseMappedPages()
            #if DEBUG
            RefreshKillSwitch.fromEnvironment?.reached(.applied)
            #endif
            return outcome
        }
    }
}

extension CDFSync {
    /// The refresh's last step: every source key of the pipeline that the source did not give is marked absent (or,
    /// in a dry run, counted), in chunks; the record gets the counts and the first keys.
    func markAbsent(_ summary: inout SyncSummary) throws {
        guard let refreshing else { return }
        try refreshing.seen.flush()
        var report = RunRecord.Refresh()
        report.absentList = refreshing.options.absentList
        let sampleSize = refreshing.options.sampleSize
        var chunk = refreshing.options.sweepChunk
        #if DEBUG
        if let c = RefreshKillSwitch.sweepChunk, c >= 1 { chunk = c }
        #endif
        logger.info("looking for the panel's keys the source no longer has")
        let outcome = try store.markAbsent(
            scope: options.pipeline, pipeline: options.pipeline, seen: refreshing.seen, dryRun: refreshing.options.dryRun,
            chunk: chunk,
            afterChunk: { _ in
                #if DEBUG
                RefreshKillSwitch.fromEnvironment?.reached(.marked)
                #endif
            }
        ) { absent in
            if report.absentSample.count < sampleSize { report.absentSample.append(absent.externalID) }
            try refreshing.onAbsent(absent)
        }
        report.keys = outcome.keys
        report.absent = outcome.absent
        report.newlyAbsent = outcome.newlyMarked
        summary.refresh = report
    }
}

#if DEBUG
/// Test hook, compiled into debug builds only: `CDFSYNC_TEST_KILL_IN_REFRESH=applied:N` (or `marked:N`) makes the
/// process SIGKILL itself right after the N-th batch a refresh applied (the N-th chunk of absent keys it committed),
/// counted from 1. The refresh kill test runs the real `cdfsync refresh` with it; `CDFSYNC_TEST_REFRESH_SWEEP_CHUNK`
/// sets the chunk size there. A release build ignores both.
struct RefreshKillSwitch: Sendable {
    static let variable = "CDFSYNC_TEST_KILL_IN_REFRESH"
    enum Step: String, Sendable { case applied, marked }
    let step: Step
    let count: Int

    static let fromEnvironment: RefreshKillSwitch? = {
        guard let text = ProcessInfo.processInfo.environment[variable] else { return nil }
        let parts = text.split(separator: ":")
        guard parts.count == 2, let step = Step(rawValue: String(parts[0])), let n = Int(parts[1]), n >= 1 else {
            FileHandle.standardError.write(Data("\(variable)=\(text) ignored: expected applied:N or marked:N\n".utf8))
            return nil
        }
        return RefreshKillSwitch(step: step, count: n)
    }()

    /// The chunk size the test asks for (nil: the default).
    static let sweepChunk: Int? = ProcessInfo.processInfo.environment["CDFSYNC_TEST_REFRESH_SWEEP_CHUNK"].flatMap(Int.init)

    private static let seen = Mutex<[Step: Int]>([:])

    func reached(_ at: Step) {
        let n = Self.seen.withLock { counts -> Int in
            counts[at, default: 0] += 1
            return counts[at]!
        }
        guard at == step, n == count else { return }
        FileHandle.standardError.write(Data("\(Self.variable): killed after \(step.rawValue) \(n)\n".utf8))
        kill(getpid(), SIGKILL)
        while true { pause() }
    }
}
#endif

extension ScratchKeySet {
    /// Notes a source key a refresh read (a NULL-cursor row's, an invalid row's): trimmed as the record mapper trims
    /// an external id; an empty one is no key.
    func insertSourceKey(_ raw: String, scope: String) throws {
        let id = raw.trimmingWhitespace()
        if !id.isEmpty { try insert(PanelStore.sourceIdentityKey(scope: scope, externalID: String(id))) }
    }
}
