// Android library module: `gradle assembleRelease` → build/outputs/aar/friendcore-release.aar.
// Run `bash build-jnilibs.sh` first: it builds src/main/jniLibs/<abi>/libfriend_ffi.so and the
// generated Kotlin in ../bindings/generated/kotlin, both compiled in here.
plugins {
    id("com.android.library") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.1.21"
}

android {
    namespace = "ch.friendcore"
    compileSdk = 35

    defaultConfig {
        minSdk = 24
        // R8 in the app must keep JNA and the generated classes (JNA reads them reflectively).
        consumerProguardFiles("consumer-rules.pro")
        ndk {
            abiFilters += listOf("arm64-v8a", "armeabi-v7a", "x86_64")
        }
    }

    sourceSets {
        getByName("main") {
            // Our thin layer (Flows.kt) plus the uniffi-generated API (not committed).
            java.srcDirs("src/main/kotlin", "../bindings/generated/kotlin")
            jniLibs.srcDirs("src/main/jniLibs")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    packaging {
        jniLibs {
            // Stored uncompressed and 16 KB-aligned in the APK (AGP ≥ 8.5.1), so devices with 16 KB
            // pages can map the library in place; the .so itself is linked with 16 KB alignment.
            useLegacyPackaging = false
        }
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(org.jetbrains.kotlin.gradle.dsl.JvmTarget.JVM_17)
    }
}

dependencies {
    // Part of the public API (generated code extends JNA types; calls are suspend functions).
    api("net.java.dev.jna:jna:5.17.0@aar")
    api("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.10.2")
}
