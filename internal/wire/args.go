package wire

// ArgsKey is the key of the positional arguments in a job's arguments
// object when positional words and key=value pairs are given together
// (Salt's convention: `state.apply web test=true` is
// {"_args": ["web"], "test": true}). The peel maps its elements onto the
// function's positional parameters as it does a plain JSON array.
const ArgsKey = "_args"
