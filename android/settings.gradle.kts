// The FriendCore Android library: the generated Kotlin bindings, the thin Flow layer and the
// native libraries built by build-jnilibs.sh, packaged as one AAR. See README.md.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "friendcore"
