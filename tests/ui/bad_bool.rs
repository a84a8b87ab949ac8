fn main() {
    let _a = normflow::flow!(planar(identity_init = 1));
}
