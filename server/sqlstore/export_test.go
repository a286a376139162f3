package sqlstore

// Migrations returns the names of the embedded migrations, in the order
// they are applied.
func Migrations() ([]string, error) {
	ms, err := embeddedMigrations()
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.name
	}
	return names, err
}
