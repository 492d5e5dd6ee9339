// Test images for the node tier (e2e/cluster up --node): standard library only, so
// they build offline in seconds. See e2e/lib/node-images.sh.
module portcullis.test/images

go 1.22
