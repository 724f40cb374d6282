package twins

import "fmt"

// thingError is the value of a twin error envelope (upstream's codes and
// texts). A failed command is answered with it, not returned as a Go error:
// the local app is the one to act on it.
type thingError struct {
	Status      int    `json:"status"`
	Error       string `json:"error"`
	Message     string `json:"message"`
	Description string `json:"description,omitempty"`
}

func errThingNotFound(id string) *thingError {
	return &thingError{404, "things:thing.notfound", fmt.Sprintf("The Thing with ID '%s' could not be found.", id),
		"Check if the ID of your requested Thing was correct."}
}

func errThingConflict(id string) *thingError {
	return &thingError{409, "things:thing.conflict", fmt.Sprintf("The Thing with ID '%s' already exists.", id), "Choose another Thing ID."}
}

func errFeatureNotFound(id, f string) *thingError {
	return &thingError{404, "things:feature.notfound",
		fmt.Sprintf("The Feature with ID '%s' on the Thing with ID '%s' could not be found.", f, id),
		"Check if the ID of the Thing and the ID of your requested Feature was correct."}
}

func errFeaturesNotFound(id string) *thingError {
	return &thingError{404, "things:features.notfound", fmt.Sprintf("The Features on the Thing with ID '%s' do not exist.", id),
		"Check if the ID of the Thing was correct."}
}

func errPropertiesNotFound(id, f string, desired bool) *thingError {
	code, msg := "things:feature.properties.notfound", "The Properties of the Feature with ID '%s' on the Thing with ID '%s' do not exist."
	if desired {
		code, msg = "things:feature.desiredProperties.notfound", "The desired properties of the Feature with ID '%s' on the Thing with ID '%s' do not exist."
	}
	return &thingError{404, code, fmt.Sprintf(msg, f, id), "Check if the ID of the Thing and the Feature ID was correct."}
}

func errPropertyNotFound(id, f, ptr string, desired bool) *thingError {
	code, what := "things:feature.property.notfound", "The property"
	if desired {
		code, what = "things:feature.desiredProperty.notfound", "The desired property"
	}
	return &thingError{404, code,
		fmt.Sprintf(what+" with JSON Pointer '%s' of the Feature with ID '%s' on the Thing with ID '%s' does not exist.", ptr, f, id),
		"Check if the ID of the Thing, the Feature ID and the key of your requested property was correct."}
}

func errIDNotSettable() *thingError {
	return &thingError{400, "things:id.notsettable", "The Thing ID in the command value is not equal to the Thing ID in the command topic.",
		"Either delete the Thing ID from the command value or use the same Thing ID as in the command topic."}
}

func errIDInvalid(id string) *thingError {
	return &thingError{400, "things:id.invalid", fmt.Sprintf("Thing ID '%s' is not valid!", id),
		"It must conform to the namespaced entity ID notation (see Ditto documentation)"}
}

func errJSONInvalid(err error) *thingError {
	return &thingError{400, "json.invalid", fmt.Sprintf("Failed to parse command value: %s.", err),
		"Check if the JSON was valid and if it was in required format."}
}

func errFieldSelector(err error) *thingError {
	return &thingError{400, "json.fieldselector.invalid", fmt.Sprintf("Invalid field selector: %s.", err), "Check fields syntax."}
}

func errUnknown(msg string, err error) *thingError {
	return &thingError{400, "unknown", fmt.Sprintf("%s: %s.", msg, err), "Unexpected error on command execution. Try it later."}
}
