import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CoreMetrics
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `cdfsync serve`: one long-running process that runs the schedules of every pipeline in a directory, starts runs
/// on request (`POST /api/pipelines/{name}/run`), and serves the JSON API, `/metrics`, `/healthz` and `/readyz`
/// (docs/serve.md).
///
/// Two services under one ServiceGroup: the HTTP server (Hummingbird) and the scheduler. On SIGTERM (or SIGINT) the
/// scheduler stops first: the running statement is cancelled, the batches already read are applied and
/// checkpointed, the run is recorded, and then the HTTP server stops; the process exits 0.
public final class CDFSyncServer: Sendable {
    let configuration: ServeConfiguration
    let catalog: PipelineCatalog
    let state = ServiceState()
    let metrics: ServiceMetrics
    let hooks = ServiceHooks()
    let security: Security
    let connections: SavedConnections
    let drafts = Drafts()
    private let slots = Mutex<[String: StoreSlot]>([:])
    private let workers = Mutex<[String: RunWorker]>([:])
    /// Each pipeline's schedule as last applied to its next run (a hand edit that changes it reschedules it).
    private let schedules = Mutex<[String: Pipeline.Schedule?]>([:])

    var logger: Logger { configuration.logger }

    /// - Parameter metrics: where the metrics go (tests pass their own registry; `serve` bootstraps swift-metrics
    ///   with the same factory, so the HTTP server's request metrics land there too).
    init(configuration: ServeConfiguration, metrics: ServiceMetrics) throws {
        try configuration.validate()
        self.configuration = configuration
        self.metrics = metrics
        catalog = PipelineCatalog(directory: configuration.pipelinesDirectory)
        connections = SavedConnections(directory: configuration.configDirectory)
        security = Security(token: configuration.apiToken, loopbackOnly: configuration.apiToken == nil)
    }

    /// A server with its own metrics registry.
    public convenience init(configuration: ServeConfiguration) throws {
        try self.init(configuration: configuration, metrics: ServiceMetrics())
    }

    // MARK: Running

    /// Runs until SIGTERM or SIGINT, then stops gracefully (see the type's description).
    ///
    /// - Parameters:
    ///   - bootstrapMetrics: bootstrap swift-metrics with this server's Prometheus factory (once per process).
    ///   - onListening: called with the bound port once the server accepts connections.
    public func run(bootstrapMetrics: Bool = true, onListening: @escaping @Sendable (Int) -> Void = { _ in })
        async throws
    {
        if bootstrapMetrics { MetricsSystem.bootstrap(metrics.factory) }
        let group = makeServiceGroup(signals: [.sigterm, .sigint], onListening: onListening)
        try await explainingListenErrors { try await group.run() }
    }

    /// Runs `body` (the service group), turning an error to listen on the configured address into a ``SyncError``.
    func explainingListenErrors(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as IOError {
            throw Self.listenError(error, host: configuration.host, port: configuration.port)
        }
    }

    /// What an operator reads when the server cannot listen: the address, why in words, and what to do.
    static func listenError(_ error: IOError, host: String, port: Int) -> SyncError {
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let why = String(cString: strerror(error.errnoCode))
        return switch error.errnoCode {
        case EADDRINUSE:
            SyncError("cannot listen on \(address): \(why) (another process listens on port \(port))",
                remedy: "Stop that process (`ss -ltnp 'sport = :\(port)'` names it), or choose another --port.")
        case EADDRNOTAVAIL:
            SyncError("cannot listen on \(address): \(why)",
                remedy: "--host must be an address of this machine: 127.0.0.1 (the default), ::1, 0.0.0.0 or an "
                    + "interface's address.")
        case EACCES:
            SyncError("cannot listen on \(address): \(why)",
                remedy: "Ports below 1024 need privileges: choose --port 1024 or above (8080, say).")
        default:
            SyncError("cannot listen on \(address): \(error)", remedy: "Check --host and --port.")
        }
    }

    /// The HTTP server and the scheduler as one group; `signals` start its graceful shutdown.
    func makeServiceGroup(signals: [UnixSignal], onListening: @escaping @Sendable (Int) -> Void) -> ServiceGroup {
        let app = makeApplication(onListening: onListening)
        // Shut down in reverse order: the scheduler (and its run) first, while the server still answers /readyz.
        return ServiceGroup(configuration: .init(
            services: [ServeOnOwnThreads(app: app), SchedulerService(server: self)], gracefulShutdownSignals: signals,
            logger: logger))
    }

    /// The HTTP application: routes, security, console.
    func makeApplication(onListening: @escaping @Sendable (Int) -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: security)
        router.add(middleware: ErrorMiddleware())
        addRoutes(to: router)
        addConsoleAPI(to: router)
        addActivationAPI(to: router)
        addConsole(to: router)
        return Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port),
                serverName: nil),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    // MARK: Pipelines and their state directories

    /// The state directory of a pipeline, as an absolute path (two spellings of one directory share a worker).
    func stateDirectory(of spec: Pipeline) -> String {
        let dir = spec.stateDir ?? configuration.stateDirectory
        return URL(fileURLWithPath: dir).standardizedFileURL.path
    }

    func slot(_ directory: String) -> StoreSlot {
        slots.withLock { all in
            if let s = all[directory] { return s }
            let s = StoreSlot(directory: directory, mapSize: configuration.maxStoreBytes)
            all[directory] = s
            return s
        }
    }

    /// What runs a pipeline of a state directory.
    func runner(_ directory: String) -> PipelineRunner {
        PipelineRunner(configuration: configuration, catalog: catalog, state: state, metrics: metrics, hooks: hooks,
            slot: slot(directory), connections: connections)
    }

    /// The worker of a state directory, started when first needed.
    func worker(_ directory: String) -> RunWorker {
        let runner = runner(directory)
        return workers.withLock { all in
            if let w = all[directory] { return w }
            let w = RunWorker(directory: directory) { pipeline, trigger in runner.run(pipeline, trigger: trigger) }
            all[directory] = w
            return w
        }
    }

    /// The state directories of the pipelines that load, and the default one.
    var stateDirectories: [String] {
        let dirs = Set(catalog.current.compactMap { $0.spec.map(stateDirectory(of:)) })
            .union([URL(fileURLWithPath: configuration.stateDirectory).standardizedFileURL.path])
        return dirs.sorted()
    }

    /// What `POST /api/pipelines/{name}/run` answers.
    enum TriggerResult: Sendable {
        case accepted(RunWorker.Enqueued)
        case unknown
        case broken(String)
        case stopping

        var isAccepted: Bool {
            if case .accepted = self { return true }
            return false
        }
    }

    /// Asks for a run of `name` now.
    func trigger(_ name: String, by trigger: String) -> TriggerResult {
        guard !state.isStopping else { return .stopping }
        let entries = catalog.refresh()
        guard let entry = entries.first(where: { $0.spec?.name == name || ($0.spec == nil && $0.name == name) })
        else { return .unknown }
        if let error = entry.error { return .broken(error) }
        guard let spec = entry.spec, let enqueued = worker(stateDirectory(of: spec)).enqueue(name, trigger: trigger)
        else { return .stopping }
        if enqueued != .started { state.update(name) { $0.queued = true } }
        metrics.queued(pipeline: name, enqueued != .started)
        return .accepted(enqueued)
    }

    // MARK: Scheduling

    /// Reads the pipelines again, learns what the stores say of them, and computes their first runs.
    func start() {
        let entries = catalog.refresh()
        seedFromStores(entries)
        tick(at: Date(), first: true)
        state.setReady()
        logger.info("serving", metadata: [
            "pipelines": "\(entries.filter { $0.error == nil }.count)",
            "directory": "\(FilePaths.shown(configuration.pipelinesDirectory))",
        ])
        for e in entries where e.error != nil {
            logger.error("pipeline file does not load", metadata: ["file": "\(e.path)", "error": "\(e.error!)"])
        }
    }

    /// One look: pick up edited files, reschedule what changed, start what is due.
    func tick(at now: Date = Date(), first: Bool = false) {
        guard !state.isStopping else { return }
        let entries = first ? catalog.current : catalog.refresh()
        for entry in entries {
            guard entry.error == nil, let spec = entry.spec else { continue }
            let name = spec.name
            let changed = schedules.withLock { known -> Bool in
                defer { known[name] = spec.schedule }
                guard let old = known[name] else { return true }
                return old != spec.schedule
            }
            if changed {
                metrics.register(pipeline: name)
                state.update(name) { p in
                    guard !p.running else { return }
                    if let s = spec.schedule {
                        p.nextRun = first && configuration.runAtStart ? now : ScheduleClock.nextBoundary(after: now,
                            period: s.seconds)
                    } else {
                        p.nextRun = nil
                    }
                }
            }
            let p = state.get(name)
            guard let next = p.nextRun, next <= now, !p.running else { continue }
            state.update(name) { $0.nextRun = nil }
            _ = trigger(name, by: "schedule")
        }
    }

    /// What the state stores already say: the last applied commit of each pipeline (freshness survives a restart).
    private func seedFromStores(_ entries: [PipelineCatalog.Entry]) {
        let byDirectory = Dictionary(grouping: entries.compactMap(\.spec), by: stateDirectory(of:))
        for (directory, specs) in byDirectory {
            let names = Set(specs.map(\.name))
            _ = try? slot(directory).withReader { store in
                var found: Set<String> = []
                for (id, json) in try store.runs(limit: 5_000) where found.count < names.count {
                    guard var record = try? RunRecord(json: json), names.contains(record.pipeline),
                        !found.contains(record.pipeline), let committed = PipelineRunner.lastCommit(of: record)
                    else { continue }
                    record.runID = id
                    found.insert(record.pipeline)
                    state.update(record.pipeline) { $0.lastCommitAt = committed }
                }
            }
        }
    }

    /// Graceful shutdown: no new run starts; the running one is cancelled at its next batch boundary.
    func beginStopping() {
        state.setStopping()
        for w in workers.withLock({ Array($0.values) }) { w.stop() }
    }

    /// Returns once every worker's thread has ended (the running runs recorded).
    func waitForRuns() async {
        for w in workers.withLock({ Array($0.values) }) { await w.waitUntilStopped() }
    }
}

/// The scheduler as a service: starts the due runs every half second; on graceful shutdown stops the runs and
/// returns once they are recorded.
struct SchedulerService: Service {
    let server: CDFSyncServer

    func run() async throws {
        server.start()
        await withGracefulShutdownHandler {
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                server.tick()
                try? await Task.sleep(for: .milliseconds(500))
            }
        } onGracefulShutdown: {
            server.beginStopping()
        }
        server.beginStopping()
        server.logger.info("stopping: waiting for the running run to reach a batch boundary and be recorded")
        await server.waitForRuns()
        server.logger.info("stopped")
    }
}

/// The threads `cdfsync serve`'s HTTP tasks run on: route handlers (some call the synchronous engine — a connection
/// test, a preview) and Hummingbird's connection tasks. Not the cooperative pool, which blocking callers (libcurl in
/// the same process, the engine's waits) can fill on a 2-core machine, leaving no thread to answer on.
let serveExecutor = DedicatedExecutor(name: "cdfsync-serve-http")

/// Runs the HTTP application on ``serveExecutor`` rather than on the cooperative pool it was started from.
struct ServeOnOwnThreads<App: ApplicationProtocol>: Service {
    let app: App

    func run() async throws {
        try await withTaskExecutorPreference(serveExecutor) {
            try await app.run()
        }
    }
}
