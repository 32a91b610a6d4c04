/// How `table_changes` over vacuumed versions fails: the error classes Delta and Databricks answer when the change
/// data of a range is gone, one per table (`vacuum_error_class`; `DELTA_VERSION_NOT_FOUND` by default).
///
/// Which one a real warehouse gives depends on what was cleaned up: the log (`DELTA_VERSION_NOT_FOUND`,
/// `DELTA_TRUNCATED_TRANSACTION_LOG`, `DELTA_LOG_FILE_NOT_FOUND`), the change data files
/// (`DELTA_CHANGE_DATA_FILE_NOT_FOUND`, the Databricks Runtime's), the data files (`DELTA_FILE_NOT_FOUND_DETAILED`,
/// `FAILED_READ_FILE.FILE_NOT_EXIST`, `FAILED_READ_FILE.DBR_FILE_NOT_EXIST`), the retention check
/// (`..._BEYOND_DELETED_FILE_RETENTION_DURATION`), or a version without change data (`DELTA_MISSING_CHANGE_DATA`).
enum VacuumError {
    /// Class → SQLSTATE.
    static let classes: [String: String] = [
        "DELTA_VERSION_NOT_FOUND": "22003",
        "DELTA_CHANGE_DATA_FILE_NOT_FOUND": "42K03",
        "DELTA_FILE_NOT_FOUND_DETAILED": "42K03",
        "FAILED_READ_FILE.FILE_NOT_EXIST": "KD001",
        "FAILED_READ_FILE.DBR_FILE_NOT_EXIST": "KD001",
        "DELTA_TRUNCATED_TRANSACTION_LOG": "42K03",
        "DELTA_LOG_FILE_NOT_FOUND": "42K03",
        "DELTA_MISSING_FILES_UNEXPECTED_VERSION": "42K03",
        "DELTA_UNSUPPORTED_TIME_TRAVEL_BEYOND_DELETED_FILE_RETENTION_DURATION": "0AKDC",
        "DELTA_MISSING_CHANGE_DATA": "KD002",
    ]

    /// The error `table_changes(t, start, end)` fails with when `start` is below the earliest retained version.
    static func error(_ errorClass: String, table: TableName, start: Int, end: Int, earliest: Int, latest: Int)
        -> SQLError
    {
        let location = "s3://sim-workspace/\(table.catalog)/\(table.schema)/\(table.table)"
        let log = location + "/_delta_log"
        let changeFile = "\(location)/_change_data/cdc-00000-\(String(start, radix: 16))-sim.c000.snappy.parquet"
        let dataFile = "\(location)/part-00000-\(String(start, radix: 16))-sim.c000.snappy.parquet"
        let text: String
        switch errorClass {
        case "DELTA_CHANGE_DATA_FILE_NOT_FOUND":
            text = "File \(changeFile) referenced in the transaction log cannot be found. This can occur when the "
                + "change data file is out of the retention period and has been deleted by the VACUUM statement."
        case "DELTA_FILE_NOT_FOUND_DETAILED":
            text = "File \(dataFile) referenced in the transaction log cannot be found. This occurs when data has been "
                + "manually deleted from the file system rather than using the table `DELETE` statement."
        case "FAILED_READ_FILE.FILE_NOT_EXIST":
            text = "Error while reading file \(dataFile). File does not exist. It is possible the underlying files "
                + "have been updated."
        case "FAILED_READ_FILE.DBR_FILE_NOT_EXIST":
            text = "Error while reading file \(changeFile). File does not exist."
        case "DELTA_TRUNCATED_TRANSACTION_LOG":
            let file = String(repeating: "0", count: max(0, 20 - String(start).count)) + "\(start).json"
            text = "\(log)/\(file): Unable to reconstruct state at version \(start) as the transaction log has been "
                + "truncated due to manual deletion or the log retention policy (delta.logRetentionDuration=30 days) "
                + "and checkpoint retention policy (delta.checkpointRetentionDuration=2 days)"
        case "DELTA_LOG_FILE_NOT_FOUND":
            text = "Unable to retrieve the delta log files to construct table version \(start) starting from "
                + "checkpoint version \(earliest) at \(log)."
        case "DELTA_MISSING_FILES_UNEXPECTED_VERSION":
            text = "Delta stream cannot resume from version \(start); transaction log starts at \(earliest). Log "
                + "files may have been deleted by log retention."
        case "DELTA_UNSUPPORTED_TIME_TRAVEL_BEYOND_DELETED_FILE_RETENTION_DURATION":
            text = "Cannot time travel beyond delta.deletedFileRetentionDuration (168 HOURS) set on the table."
        case "DELTA_MISSING_CHANGE_DATA":
            text = "Error getting change data for range [\(start) , \(end)] as change data was not recorded for "
                + "version [\(start)]. If you've enabled change data feed on this table, use `DESCRIBE HISTORY` to see "
                + "when it was first enabled."
        default:
            text = "Cannot time travel Delta table to version \(start). Available versions: [\(earliest), \(latest)]."
        }
        return SQLError(errorClass, classes[errorClass] ?? "22003", text)
    }
}
