fn main() {
    std::process::exit(wcodec::cli::main());
}
