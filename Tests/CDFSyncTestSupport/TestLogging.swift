import Foundation
import Logging

/// The log level of loggers the code under test makes for itself (the engine's, the client's, serve's): `warning`,
/// so a passing suite prints test results and not every run's info lines; `CDFSYNC_TEST_LOG_LEVEL=debug swift test
/// --filter …` shows them while a test is investigated. Tests that look at log lines use ``LogCapture`` (its
/// loggers do not go through this). Installed once per test process, before the loggers under test exist, by the
/// helpers almost every test starts with (``TempDir``, ``withTemporaryDirectory(_:_:)``, ``RunningSimulator``).
public func installTestLogging() { precondition(installed) }

private let installed: Bool = {
    let level = ProcessInfo.processInfo.environment["CDFSYNC_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
        ?? .warning
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    return true
}()
