package kafka

// NewRecord is newRecord, for the tests that write the Go server's records
// themselves.
var NewRecord = newRecord
