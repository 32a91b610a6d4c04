import Logging
import Synchronization

/// What a client, a run or a check logged, for tests that look at it: a logger at trace level whose every message
/// (its text, and its level) is kept here.
public final class LogCapture: Sendable {
    private let entries = Mutex<[(level: Logger.Level, message: String)]>([])

    public init() {}

    /// A logger that records here.
    public var logger: Logger {
        Logger(label: "test") { [self] _ in Handler(capture: self) }
    }

    /// Every message logged, in order.
    public var messages: [String] { entries.withLock { $0.map(\.message) } }

    /// The messages logged at `level`.
    public func messages(at level: Logger.Level) -> [String] {
        entries.withLock { $0.filter { $0.level == level }.map(\.message) }
    }

    /// A logger at trace level that hands every message to `body`.
    public static func logger(_ body: @escaping @Sendable (String) -> Void) -> Logger {
        Logger(label: "test") { _ in Handler(forward: body) }
    }

    struct Handler: LogHandler {
        var capture: LogCapture?
        var forward: (@Sendable (String) -> Void)?
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]

        init(capture: LogCapture? = nil, forward: (@Sendable (String) -> Void)? = nil) {
            self.capture = capture
            self.forward = forward
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let text = event.message.description
            capture?.entries.withLock { $0.append((event.level, text)) }
            forward?(text)
        }
    }
}
