import Foundation
import Synchronization

/// Standard error, shared by log lines and the progress line.
///
/// On a terminal the progress line is redrawn in place (`\r`, then erase to the end of the line); a log line written
/// meanwhile first erases it, goes on a line of its own, and the progress line is drawn again below it, so the two
/// never run into each other. Thread-safe: the reading thread, the writer thread and the main thread all write here.
final class Console: Sendable {
    /// The process's standard error.
    static let standardError = Console(descriptor: STDERR_FILENO)

    let descriptor: Int32
    /// Whether the descriptor is a terminal (`isatty`).
    let isTerminal: Bool
    /// The status line drawn now (nil: none), for redrawing it after a log line.
    private let status = Mutex<String?>(nil)

    init(descriptor: Int32) {
        self.descriptor = descriptor
        isTerminal = isatty(descriptor) == 1
    }

    /// Writes `text` and a newline; a status line drawn is erased first and drawn again after it.
    func line(_ text: String) {
        status.withLock { drawn in
            var out = drawn == nil ? "" : "\r\u{1B}[K"
            out += text + "\n"
            if let drawn { out += drawn }
            write(out)
        }
    }

    /// Draws `text` as the status line in place of the one drawn (nil: erases it). Cut to the terminal's width: a
    /// line that wrapped could not be redrawn in place.
    func setStatus(_ text: String?) {
        status.withLock { drawn in
            let fitted = text.map(fit)
            write("\r\u{1B}[K" + (fitted ?? ""))
            drawn = fitted
        }
    }

    /// Draws `text` as the last state of the status line and ends it with a newline: it stays on the screen.
    func finishStatus(_ text: String) {
        status.withLock { drawn in
            write("\r\u{1B}[K" + fit(text) + "\n")
            drawn = nil
        }
    }

    /// The terminal's width in columns (80 when it cannot be asked).
    var columns: Int {
        var size = winsize()
        guard ioctl(descriptor, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }

    private func fit(_ text: String) -> String {
        let width = max(20, columns - 1)
        return text.count <= width ? text : String(text.prefix(width - 1)) + "…"
    }

    private func write(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            bytes = bytes.dropFirst(n)
        }
    }
}
