import Foundation

/// The repository root, found from this file's path (Tests/CDFSyncTestSupport/…; SwiftPM resources are not declared
/// for fixtures).
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// The path of `fixtures/<name>` in the repository.
public func fixturePath(_ name: String) -> String { repositoryRoot.appendingPathComponent("fixtures/\(name)").path }

/// A fresh temporary directory, removed with everything in it when the object is released.
public final class TempDir: @unchecked Sendable {
    public let path: String

    /// Creates `<temporary directory>/<label>-<UUID>`; a test cannot go on without it, so failing traps.
    public init(_ label: String = "cdfsync-test") {
        installTestLogging()
        path = NSTemporaryDirectory() + "\(label)-\(UUID().uuidString)"
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            fatalError("cannot create the temporary directory \(path): \(error)")
        }
    }

    /// `name` inside the directory (not created).
    public func sub(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Runs `body` with a fresh temporary directory, removed afterwards.
public func withTemporaryDirectory<R>(_ label: String = "cdfsync-test", _ body: (String) throws -> R) throws -> R {
    installTestLogging()
    let path = NSTemporaryDirectory() + label + "-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}
