import CDFSyncCore
import CDFSyncStorage
import Foundation

/// When scheduled pipelines run — the rules `cdfsync schedule` and `cdfsync serve` share.
///
/// A pipeline runs at each boundary of its period, counted in UTC from the epoch (`15m`: :00, :15, :30, :45;
/// `hourly`: every full hour; `daily`: midnight UTC). A run that failed runs again at the next boundary. A run that
/// found its state directory held by another process (a manual sync, a replay) has not started: it tries again
/// after a short wait instead of skipping a whole period.
public enum ScheduleClock {
    /// What became of a due run.
    public enum Outcome: Sendable {
        /// It ran (succeeded or failed).
        case ran
        /// Another process held the state directory; it did not start.
        case busy
    }

    /// The next multiple of `period` seconds since the epoch (UTC) after `date`.
    public static func nextBoundary(after date: Date, period: Int) -> Date {
        let t = date.timeIntervalSince1970
        return Date(timeIntervalSince1970: (floor(t / Double(period)) + 1) * Double(period))
    }

    /// When a pipeline on `schedule` runs next, after a due run ended at `date` with `outcome`.
    public static func next(after outcome: Outcome, at date: Date, schedule: Pipeline.Schedule, busyRetry: Double)
        -> Date
    {
        switch outcome {
        case .ran: nextBoundary(after: date, period: schedule.seconds)
        case .busy: date.addingTimeInterval(busyRetry)
        }
    }

    /// Whether `error` says that another process holds the state directory's writer lock (the run has not started:
    /// nothing was read or recorded).
    public static func isBusy(_ error: any Error) -> Bool {
        (error as? StorageError)?.code == .inUse
    }
}
