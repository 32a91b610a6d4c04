import CDFSyncCore
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization

/// HTTP/1.1 as Hummingbird serves it, with ``TransportFaultHandler`` between NIO's codec and Hummingbird's.
struct SimulatorHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let base: HTTP1Channel

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let ops = channel.pipeline.syncOperations
            let decoder = try ops.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try ops.addHandler(TransportFaultHandler(), position: .after(decoder))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// The simulator's HTTP/1.1 server.
    static var simulator: HTTPServerBuilder {
        .init { responder in SimulatorHTTP1Channel(base: HTTP1Channel(responder: responder)) }
    }
}

/// The threads the simulator's server runs its tasks on (handlers are short: the SQL engine, rendering; waiting for
/// a statement suspends the task).
let servingExecutor = DedicatedExecutor(name: "dbsql-sim")

/// Runs a Hummingbird application on ``servingExecutor`` rather than on the cooperative pool it was started from.
struct ServingService<App: ApplicationProtocol>: Service {
    let app: App

    func run() async throws {
        try await withTaskExecutorPreference(servingExecutor) {
            try await app.run()
        }
    }
}

/// The server of a simulator started with `start(host:port:)`.
struct Serving: Sendable {
    var group: ServiceGroup
    var listener: any Channel
    var port: Int
}

extension Simulator {
    /// The logger given to Hummingbird: it logs nothing (dbsql-sim's stdout carries one line only; `requestLog` is the
    /// simulator's own log).
    static var silentLogger: Logger { Logger(label: "dbsql-sim", factory: { _ in SwiftLogNoOpLogHandler() }) }

    /// The Hummingbird application serving this simulator on `host:port`; `onListening` gets the bound port.
    func application(
        host: String, port: Int, onListening: @escaping @Sendable (_ port: Int, _ listener: any Channel) -> Void
    ) -> some ApplicationProtocol {
        Application(
            router: makeRouter(), server: .simulator,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { [self] channel in
                let bound = channel.localAddress?.port ?? port
                state.withLock { $0.boundAddress = "\(host):\(bound)" }
                onListening(bound, channel)
            },
            logger: Self.silentLogger)
    }

    /// The simulator as a service (swift-service-lifecycle): it listens on `host:port` (0: any free port), calls
    /// `onListening` with the bound port, and serves until the service group it runs in shuts down gracefully
    /// (no new connections; requests in flight are answered).
    public func service(
        host: String = "127.0.0.1", port: Int = 0, onListening: @escaping @Sendable (_ port: Int) -> Void = { _ in }
    ) -> some Service {
        ServingService(app: application(host: host, port: port) { bound, _ in onListening(bound) })
    }

    /// Starts listening; returns the bound port (pass 0 for any free port).
    @discardableResult
    public func start(host: String = "127.0.0.1", port: Int = 0) throws -> Int {
        let started = StartSignal()
        let app = application(host: host, port: port) { bound, listener in started.listening(bound, listener) }
        let group = ServiceGroup(
            configuration: .init(services: [ServingService(app: app)], logger: Self.silentLogger))
        Task(executorPreference: servingExecutor) {
            do {
                try await group.run()
                started.ended(nil)
            } catch {
                started.ended(error)
            }
        }
        switch started.wait() {
        case .listening(let bound, let listener):
            serving.withLock { $0 = Serving(group: group, listener: listener, port: bound) }
            return bound
        case .ended(let error):
            throw SimulatorError("cannot serve on \(host):\(port): \(error.map { "\($0)" } ?? "the server stopped")")
        }
    }

    /// Stops listening and returns once the listening socket is closed; idle connections are closed, and requests in
    /// flight are answered first.
    public func stop() {
        let current = serving.withLock { s -> Serving? in
            defer { s = nil }
            return s
        }
        guard let current else { return }
        // The listening socket is closed on its event loop, whatever Swift concurrency's threads are doing (the
        // caller may hold one of them, and so may others); the rest of the shutdown goes on in the background.
        current.listener.close(promise: nil)
        Task(executorPreference: servingExecutor) { await current.group.triggerGracefulShutdown() }
        try? current.listener.closeFuture.wait()
    }

    /// The bound port, when started.
    public var port: Int? { serving.withLock { $0?.port } }

    /// `http://host:port` of the running server (the workspace URL a client is given), when started.
    public var baseURL: String? {
        guard port != nil else { return nil }
        return "http://" + state.withLock { $0.boundAddress }
    }
}

/// `start` waits here for the server to listen, or to fail.
private final class StartSignal: @unchecked Sendable {
    // @unchecked: `outcome` is read and written only while `condition` is locked.
    enum Outcome {
        case listening(Int, any Channel)
        case ended((any Error)?)
    }

    private let condition = NSCondition()
    private var outcome: Outcome?

    func listening(_ port: Int, _ listener: any Channel) { set(.listening(port, listener)) }
    func ended(_ error: (any Error)?) { set(.ended(error)) }

    private func set(_ o: Outcome) {
        condition.lock()
        if outcome == nil { outcome = o }
        condition.broadcast()
        condition.unlock()
    }

    func wait() -> Outcome {
        condition.lock()
        defer { condition.unlock() }
        while outcome == nil { condition.wait() }
        return outcome!
    }
}
