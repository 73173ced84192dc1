package names

import "strings"

// The basket (Salt's mine): named values every peel publishes about itself
// in the basket bucket, under BasketKey(id, name), and that any peel or
// operator reads through the master API's basket.get endpoint.

// EndpointBasketGet is the master API endpoint that answers basket reads: the
// values of one name for the peels a target selects, or (name empty) the
// names each of them publishes. Its subject is APISubject(EndpointBasketGet).
const EndpointBasketGet = "basket.get"

// ValidateBasketName checks a basket entry name: one subject token
// (ValidateToken), since BasketKey puts it before the peel id.
func ValidateBasketName(name string) error { return ValidateToken("basket name", name) }

// BasketNameFilter matches the basket keys of one name across the fleet.
func BasketNameFilter(name string) string { return name + ".>" }

// BasketPeelFilter matches every basket key of one peel (the permission
// pattern of its own entries; in a KV watch filter too).
func BasketPeelFilter(id string) string { return BasketKey(id, "*") }

// ParseBasketKey splits a BasketKey: the name is the first token, the peel
// id the rest.
func ParseBasketKey(key string) (id, name string, ok bool) {
	name, id, ok = strings.Cut(key, ".")
	return id, name, ok && name != "" && id != ""
}
