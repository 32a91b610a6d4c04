import Foundation

/// A path for a fresh config directory (saved connections, the secret key file), not created: the code under test
/// creates it with the modes it must have.
public func makeConfigDirectory() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("cdfsync-conn-\(UUID().uuidString)").path
}

/// A secret key as `CDFSYNC_SECRET_KEY` takes it: base64 of 32 bytes of `byte`.
public func keyText(_ byte: UInt8) -> String { Data(repeating: byte, count: 32).base64EncodedString() }
